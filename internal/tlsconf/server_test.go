package tlsconf_test

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/tlsconf"
	"github.com/metaq-go/metaq/internal/tlsconf/tlstest"
)

// serve accepts TLS connections and echoes; it returns the address.
func serve(t *testing.T, s *tlsconf.Server) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.Config())
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func dial(addr string, cfg *tls.Config) (*tls.Conn, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	// TLS 1.3 reports a refused client certificate on the first read.
	if _, err := c.Write([]byte("x")); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func TestServerTrustedAndUntrusted(t *testing.T) {
	ca, other := tlstest.NewCA(t, "ca"), tlstest.NewCA(t, "other")
	cert, key := ca.Issue(t, "broker")
	s, err := tlsconf.NewServer(cert, key, "")
	require.NoError(t, err)
	require.False(t, s.MutualTLS())
	addr := serve(t, s)

	c, err := dial(addr, &tls.Config{RootCAs: ca.Pool()})
	require.NoError(t, err)
	c.Close()
	_, err = dial(addr, &tls.Config{RootCAs: other.Pool()})
	require.Error(t, err, "a client trusting another CA must fail")
}

func TestServerRefusesOldTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	cert, key := ca.Issue(t, "broker")
	s, err := tlsconf.NewServer(cert, key, "")
	require.NoError(t, err)
	addr := serve(t, s)
	_, err = dial(addr, &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS11})
	require.Error(t, err, "TLS 1.1 must be refused")
}

func TestServerMutualTLS(t *testing.T) {
	ca, other := tlstest.NewCA(t, "ca"), tlstest.NewCA(t, "other")
	cert, key := ca.Issue(t, "broker")
	s, err := tlsconf.NewServer(cert, key, ca.CertFile)
	require.NoError(t, err)
	require.True(t, s.MutualTLS())
	addr := serve(t, s)
	roots := ca.Pool()

	_, err = dial(addr, &tls.Config{RootCAs: roots})
	require.Error(t, err, "no client certificate")
	bc, bk := other.Issue(t, "mallory")
	badCert, err := tls.LoadX509KeyPair(bc, bk)
	require.NoError(t, err)
	_, err = dial(addr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{badCert}})
	require.Error(t, err, "a client certificate from another CA")

	ac, ak := ca.Issue(t, "alice")
	good, err := tls.LoadX509KeyPair(ac, ak)
	require.NoError(t, err)
	c, err := dial(addr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{good}})
	require.NoError(t, err)
	defer c.Close()
	// The server side's view of the principal.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.Config())
	require.NoError(t, err)
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		sc, err := ln.Accept()
		if err != nil {
			got <- "accept: " + err.Error()
			return
		}
		defer sc.Close()
		tc := sc.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			got <- "handshake: " + err.Error()
			return
		}
		got <- tlsconf.PeerCommonName(tc.ConnectionState())
	}()
	cc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{good}})
	require.NoError(t, err)
	defer cc.Close()
	require.Equal(t, "alice", <-got)
}

func TestServerReload(t *testing.T) {
	ca1, ca2 := tlstest.NewCA(t, "ca1"), tlstest.NewCA(t, "ca2")
	c1, k1 := ca1.Issue(t, "broker")
	c2, k2 := ca2.Issue(t, "broker")
	dir := t.TempDir()
	certFile, keyFile := dir+"/cert.pem", dir+"/key.pem"
	cp := func(src, dst string) {
		b, err := os.ReadFile(src)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(dst, b, 0o600))
	}
	cp(c1, certFile)
	cp(k1, keyFile)
	s, err := tlsconf.NewServer(certFile, keyFile, "")
	require.NoError(t, err)
	addr := serve(t, s)
	roots1, roots2 := ca1.Pool(), ca2.Pool()

	old, err := dial(addr, &tls.Config{RootCAs: roots1})
	require.NoError(t, err)
	defer old.Close()

	// A broken file: Reload fails, the old certificate stays.
	require.NoError(t, os.WriteFile(certFile, []byte("not a certificate"), 0o600))
	err = s.Reload()
	require.ErrorContains(t, err, certFile)
	require.ErrorContains(t, err, "previous certificate stays in use")
	c, err := dial(addr, &tls.Config{RootCAs: roots1})
	require.NoError(t, err)
	c.Close()

	cp(c2, certFile)
	cp(k2, keyFile)
	require.NoError(t, s.Reload())
	_, err = dial(addr, &tls.Config{RootCAs: roots1})
	require.Error(t, err, "new handshakes get the new certificate")
	c, err = dial(addr, &tls.Config{RootCAs: roots2})
	require.NoError(t, err)
	c.Close()

	// The connection made before the reload still works.
	_, err = old.Write([]byte("y"))
	require.NoError(t, err)
	b := make([]byte, 1)
	_, err = io.ReadFull(old, b)
	require.NoError(t, err)
	require.Equal(t, "y", string(b))
}

func TestNewServerErrors(t *testing.T) {
	_, err := tlsconf.NewServer("", "", "")
	require.ErrorContains(t, err, "tls.certFile")
	ca := tlstest.NewCA(t, "ca")
	cert, key := ca.Issue(t, "broker")
	_, err = tlsconf.NewServer(cert, key, t.TempDir()+"/missing.pem")
	require.ErrorContains(t, err, "tls.clientCAFile")
	_, err = tlsconf.NewServer(key, cert, "")
	require.ErrorContains(t, err, "PEM")
}
