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
