// Package tlsconf builds the TLS configurations of metaq's brokers and
// clients from PEM files.
//
// The server side (server.go) loads a certificate and key, optionally a CA
// bundle for client certificates (mutual TLS), and keeps them behind an
// atomic pointer: Reload reads the files again and new handshakes use the
// new material while existing connections keep theirs. A bad new file
// leaves the old configuration in place. Only TLS 1.2 and later are
// offered.
//
// The client side (client.go) builds a *tls.Config that verifies the
// server against a CA file and, for mutual TLS, presents a client
// certificate.
//
// Tests make their certificates with the subpackage tlstest.
package tlsconf
