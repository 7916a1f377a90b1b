package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Client returns the TLS configuration of a client connection to a broker:
// TLS 1.2 or later, the certificate authorities of caFile (PEM) as the only
// trusted roots, or the system roots when caFile is "", and, when certFile
// and keyFile are given, the client certificate presented for mutual TLS
// (the broker then takes its subject CommonName as the principal).
//
// The server name is left empty: internal/conn sets it from the address it
// dials (set ServerName on the result to verify another name). Sessions are
// cached so that reconnects resume them, and records are always full-sized
// (clients pipeline many requests per write). Errors name the file that
// could not be used and why.
func Client(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(64),
		DynamicRecordSizingDisabled: true}
	if caFile != "" {
		pool, err := loadCAFile(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	switch {
	case certFile == "" && keyFile == "":
	case certFile == "" || keyFile == "":
		return nil, errors.New("tlsconf: a client certificate needs both a certificate file and a key file (got only one)")
	default:
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: client certificate %s with key %s: %w (want PEM files of a matching certificate and private key)", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// loadCAFile reads PEM certificates from file into a new pool.
func loadCAFile(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tlsconf: CA file %s holds no PEM certificate (want one or more -----BEGIN CERTIFICATE----- blocks)", file)
	}
	return pool, nil
}
