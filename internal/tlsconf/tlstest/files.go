package tlstest

import (
	"crypto/x509"
	"os"
	"testing"
)

// Pool is a certificate pool holding the CA, for a client's RootCAs or a
// server's ClientCAs.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// IssueAt issues a certificate for cn (like Issue) and atomically replaces
// certFile and keyFile with it (mode 0600): a server watching those paths
// (a reload) never reads a half-written file.
func (ca *CA) IssueAt(t testing.TB, cn, certFile, keyFile string, hosts ...string) {
	t.Helper()
	c, k := ca.Issue(t, cn, hosts...)
	for src, dst := range map[string]string{c: certFile, k: keyFile} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+".tmp", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(dst+".tmp", dst); err != nil {
			t.Fatal(err)
		}
	}
}
