// Package authtest is an authenticating (and optionally TLS-terminating)
// front for tests of clients: it speaks the broker's `auth` exchange
// (PROTOCOL.md "Authentication": SASL PLAIN and SCRAM-SHA-256, the server
// side of github.com/xdg-go/scram) and, once a connection has authenticated,
// forwards it byte for byte to an upstream broker, or answers `version`
// itself when there is none. It lets client tests exercise TLS and
// authentication without a broker that enforces them.
package authtest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/xdg-go/scram"

	"github.com/metaq-go/metaq/internal/tlsconf/tlstest"
	"github.com/metaq-go/metaq/protocol"
)

// Options configure a Server.
type Options struct {
	// Users maps user names to passwords, accepted with both mechanisms.
	Users map[string]string
	// CA, when set, makes the server accept only TLS connections, with a
	// certificate CA issued for 127.0.0.1 and localhost.
	CA *tlstest.CA
	// ClientCA, with CA, makes the server require a client certificate
	// ClientCA signed (mutual TLS).
	ClientCA *tlstest.CA
	// Upstream is the broker address authenticated connections are
	// forwarded to; "" answers `version` with "authtest" and anything else
	// with 400.
	Upstream string
	// BadServerFinal makes the server accept a SCRAM client-final and send a
	// server-final message that does not prove knowledge of the credentials
	// (an impostor broker).
	BadServerFinal bool
}

// Reason is the body of a refused authentication.
const Reason = "authentication failed: unknown user or wrong password"

// Server is a running front on 127.0.0.1.
type Server struct {
	// Addr is the address clients dial.
	Addr string

	opts  Options
	ln    net.Listener
	scram *scram.Server

	auths    atomic.Int64 // successful authentications
	failures atomic.Int64 // refused authentications

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// Start starts a server that t stops when it ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.CA != nil {
		ln = tls.NewListener(ln, serverConfig(t, o.CA, o.ClientCA))
	}
	s := &Server{Addr: ln.Addr().String(), opts: o, ln: ln, conns: map[net.Conn]struct{}{}}
	s.scram, err = scram.SHA256.NewServer(s.lookup)
	if err != nil {
		t.Fatal(err)
	}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

// Auths returns the number of successful authentications so far.
func (s *Server) Auths() int { return int(s.auths.Load()) }

// Failures returns the number of refused authentications so far.
func (s *Server) Failures() int { return int(s.failures.Load()) }

// DropConnections closes every open client connection (clients see a lost
// connection and must reconnect, and authenticate again).
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.Close()
	}
}

// serverConfig is a TLS server configuration with a certificate of ca;
// clientCA, when set, requires a client certificate it signed.
func serverConfig(t testing.TB, ca, clientCA *tlstest.CA) *tls.Config {
	certFile, keyFile := ca.Issue(t, "broker")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCA != nil {
		pem, err := os.ReadFile(clientCA.CertFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ClientCAs = x509.NewCertPool()
		cfg.ClientCAs.AppendCertsFromPEM(pem)
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg
}

func (s *Server) lookup(user string) (scram.StoredCredentials, error) {
	pw, ok := s.opts.Users[user]
	if !ok {
		return scram.StoredCredentials{}, errors.New("unknown user")
	}
	c, err := scram.SHA256.NewClient(user, pw, "")
	if err != nil {
		return scram.StoredCredentials{}, err
	}
	return c.GetStoredCredentialsWithError(scram.KeyFactors{Salt: "authtest-salt-" + user, Iters: 4096})
}

func (s *Server) close() {
	_ = s.ln.Close()
	s.DropConnections()
	s.wg.Wait()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serve(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			_ = c.Close()
		}()
	}
}

// serve runs one connection: the auth exchange, then forwarding.
func (s *Server) serve(c net.Conn) {
	r := bufio.NewReader(c)
	var conv *scram.ServerConversation
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			return
		}
		op := int32(protocol.NoOpaque)
		if n, err := strconv.ParseInt(f[len(f)-1], 10, 32); err == nil {
			op = int32(n)
		}
		switch {
		case f[0] == "auth" && len(f) == 4:
			done, reply := s.step(f[1], f[2], &conv, op)
			if _, err := c.Write(reply); err != nil || done {
				if err == nil {
					s.forward(c, r)
				}
				return
			}
		default: // like a broker that requires authentication
			_, _ = c.Write(protocol.AppendResultString(nil, protocol.CodeUnauthorized, op, "authentication required: send auth first"))
			if f[0] != "version" {
				return // a request body cannot be skipped here: end the connection
			}
		}
	}
}

// step handles one auth request; done when the client authenticated.
func (s *Server) step(mech, b64 string, conv **scram.ServerConversation, op int32) (bool, []byte) {
	var msg []byte
	if b64 != "=" {
		var err error
		if msg, err = base64.StdEncoding.DecodeString(b64); err != nil {
			return false, protocol.AppendResultString(nil, protocol.CodeBadRequest, op, "data is not base64")
		}
	}
	refuse := func() (bool, []byte) {
		s.failures.Add(1)
		*conv = nil
		return false, protocol.AppendResultString(nil, protocol.CodeUnauthorized, op, Reason)
	}
	switch mech {
	case protocol.MechPlain:
		parts := strings.Split(string(msg), "\x00")
		if len(parts) != 3 || (parts[0] != "" && parts[0] != parts[1]) {
			return refuse()
		}
		if pw, ok := s.opts.Users[parts[1]]; !ok || pw != parts[2] {
			return refuse()
		}
		s.auths.Add(1)
		return true, protocol.AppendResultString(nil, protocol.CodeOK, op, "")
	case protocol.MechSCRAMSHA256:
		if *conv == nil {
			*conv = s.scram.NewConversation()
			out, err := (*conv).Step(string(msg))
			if err != nil {
				return refuse()
			}
			return false, protocol.AppendResultString(nil, protocol.CodeContinue, op, base64.StdEncoding.EncodeToString([]byte(out)))
		}
		out, err := (*conv).Step(string(msg))
		if err != nil || !(*conv).Valid() {
			return refuse()
		}
		if s.opts.BadServerFinal {
			out = "v=" + base64.StdEncoding.EncodeToString(make([]byte, 32))
		}
		s.auths.Add(1)
		return true, protocol.AppendResultString(nil, protocol.CodeOK, op, base64.StdEncoding.EncodeToString([]byte(out)))
	}
	return false, protocol.AppendResultString(nil, protocol.CodeUnauthorized, op, "unknown mechanism "+mech)
}

// forward connects an authenticated client to the upstream broker, or
// answers version requests itself.
func (s *Server) forward(c net.Conn, r *bufio.Reader) {
	if s.opts.Upstream == "" {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			f := strings.Fields(line)
			if len(f) == 0 {
				return
			}
			op, _ := strconv.ParseInt(f[len(f)-1], 10, 32)
			code, body := int32(protocol.CodeBadRequest), "authtest answers only version"
			if f[0] == "version" {
				code, body = protocol.CodeOK, "authtest"
			}
			if _, err := c.Write(protocol.AppendResultString(nil, code, int32(op), body)); err != nil {
				return
			}
		}
	}
	up, err := net.Dial("tcp", s.opts.Upstream)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.conns[up] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, up)
		s.mu.Unlock()
		_ = up.Close()
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(c, up)
		_ = c.Close()
	}()
	_, _ = io.Copy(up, r)
	_ = up.Close()
	<-done
}
