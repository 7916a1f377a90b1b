package tlsconf_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metaq-go/metaq/internal/tlsconf"
	"github.com/metaq-go/metaq/internal/tlsconf/tlstest"
)

func TestClient(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	cert, key := ca.Issue(t, "alice")
	cfg, err := tlsconf.Client(ca.CertFile, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.RootCAs == nil || len(cfg.Certificates) != 1 {
		t.Fatalf("config: min %x, roots %v, %d certificates", cfg.MinVersion, cfg.RootCAs != nil, len(cfg.Certificates))
	}
	if cfg, err = tlsconf.Client("", "", ""); err != nil || cfg.RootCAs != nil || cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("system roots: %v, %v", cfg, err)
	}
	junk := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		scenario, ca, cert, key, want string
	}{
		{"missing CA file", "/nonexistent/ca.pem", "", "", "/nonexistent/ca.pem"},
		{"CA file without PEM", junk, "", "", junk + " holds no PEM certificate"},
		{"certificate without key", ca.CertFile, cert, "", "both a certificate file and a key file"},
		{"key without certificate", ca.CertFile, "", key, "both a certificate file and a key file"},
		{"key does not match", ca.CertFile, cert, junk, junk},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			if _, err := tlsconf.Client(tc.ca, tc.cert, tc.key); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Client: %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

// A reconnect resumes the TLS session (cheaper than a full handshake).
func TestClientResumesSessions(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	certFile, keyFile := ca.Issue(t, "broker")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte{1}) // completes the handshake; TLS 1.3 sends the ticket first
			_ = c.Close()
		}
	}()
	cfg, err := tlsconf.Client(ca.CertFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ServerName = "127.0.0.1"
	var resumed []bool
	for range 2 {
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		resumed = append(resumed, c.ConnectionState().DidResume)
		c.Close()
	}
	if resumed[0] || !resumed[1] {
		t.Fatalf("resumed = %v, want [false true]", resumed)
	}
}
