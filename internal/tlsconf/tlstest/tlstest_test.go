package tlstest

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
)

func TestIssuedCertificateVerifiesAgainstItsCAOnly(t *testing.T) {
	ca, other := NewCA(t, "test-ca"), NewCA(t, "other-ca")
	certFile, keyFile := ca.Issue(t, "alice")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := func(c *CA) *x509.CertPool {
		p := x509.NewCertPool()
		pem, err := os.ReadFile(c.CertFile)
		if err != nil || !p.AppendCertsFromPEM(pem) {
			t.Fatal("bad CA file", err)
		}
		return p
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool(ca), DNSName: "localhost",
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("own CA: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool(other)}); err == nil {
		t.Fatal("a certificate verified against a CA that did not issue it")
	}
	if leaf.Subject.CommonName != "alice" {
		t.Fatal(leaf.Subject.CommonName)
	}
}
