package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// Server is a broker's TLS material, reloadable while the broker serves.
// Its methods are safe for concurrent use.
type Server struct {
	certFile, keyFile, clientCAFile string

	cur atomic.Pointer[tls.Config] // the per-handshake config, replaced by Reload
}

// NewServer loads certFile and keyFile (PEM) and, when clientCAFile is not
// empty, the CA bundle that client certificates must chain to: every client
// must then present a valid certificate (mutual TLS).
func NewServer(certFile, keyFile, clientCAFile string) (*Server, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tls: both tls.certFile and tls.keyFile must be set")
	}
	s := &Server{certFile: certFile, keyFile: keyFile, clientCAFile: clientCAFile}
	cfg, err := s.load()
	if err != nil {
		return nil, err
	}
	s.cur.Store(cfg)
	return s, nil
}

// MutualTLS reports whether clients must present a certificate.
func (s *Server) MutualTLS() bool { return s.clientCAFile != "" }

// Config returns the configuration to give tls.Server or tls.NewListener.
// It delegates every handshake to the material current at that moment, so
// a Reload applies to later handshakes without a new listener.
func (s *Server) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load(), nil
		},
	}
}

// OptionalClientCertConfig is Config for a port where a client
// certificate is one way among others to authenticate (the admin port,
// which also takes a bearer token): a certificate is verified against the
// client CA when presented, never required.
func (s *Server) OptionalClientCertConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cfg := s.cur.Load().Clone()
			if cfg.ClientCAs != nil {
				cfg.ClientAuth = tls.VerifyClientCertIfGiven
			}
			return cfg, nil
		},
	}
}

// Reload reads the certificate, key and client CA files again. On any
// error the previous material stays in use and the error says which file
// is wrong; connections already established are never affected.
func (s *Server) Reload() error {
	cfg, err := s.load()
	if err != nil {
		return fmt.Errorf("%w (the previous certificate stays in use)", err)
	}
	s.cur.Store(cfg)
	return nil
}

// Certificate returns the leaf certificate currently served.
func (s *Server) Certificate() *x509.Certificate {
	return s.cur.Load().Certificates[0].Leaf
}

func (s *Server) load() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load certificate %s with key %s: %w (both must be PEM, the key matching the certificate)", s.certFile, s.keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls: parse certificate %s: %w", s.certFile, err)
		}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if s.clientCAFile != "" {
		pool, err := loadClientCAs(s.clientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// loadClientCAs reads the PEM bundle of CAs that client certificates must chain to.
func loadClientCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tls: read tls.clientCAFile: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: tls.clientCAFile %s holds no PEM certificate", file)
	}
	return pool, nil
}

// PeerCommonName is the Subject CommonName of a connection's verified
// client certificate, or "" when the client presented none that verified.
func PeerCommonName(cs tls.ConnectionState) string {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ""
	}
	return cs.VerifiedChains[0][0].Subject.CommonName
}
