package config

import (
	"crypto/tls"

	"github.com/metaq-go/metaq/internal/secretfile"
	"github.com/metaq-go/metaq/internal/tlsconf"
)

// [security] keys of a broker's outgoing connections: how a slave reaches
// its master (docs/security-clients.md). The broker's own TLS and user keys
// live next to them.
const (
	sectionSecurity       = "security"
	keyBrokerUser         = "brokerUser"
	keyBrokerPasswordFile = "brokerPasswordFile"
	keyTLSCAFile          = "tls.caFile"

	// Read when present (the broker's TLS keys): tls.caFile defaults to
	// tls.clientCAFile, and a slave presents tls.certFile/tls.keyFile as its
	// client certificate (for a master that requires mutual TLS).
	keyTLSClientCAFileFallback = "tls.clientCAFile"
	keyTLSCertFileFallback     = "tls.certFile"
	keyTLSKeyFileFallback      = "tls.keyFile"
)

// securityKeys are the keys of [security].
var securityKeys = []string{keyBrokerUser, keyBrokerPasswordFile, keyTLSCAFile}

// ReplicationClient is how a slave connects to its master ([security]).
type ReplicationClient struct {
	// User (brokerUser) authenticates the slave to its master with
	// SCRAM-SHA-256; "" = no authentication.
	User string
	// PasswordFile is brokerPasswordFile; Password its content (without a
	// trailing newline), read and checked at load. Never logged.
	PasswordFile string
	Password     string
	// CAFile (tls.caFile, default tls.clientCAFile) is the CA that signed
	// the master's certificate; set, the slave connects over TLS.
	CAFile string
	// CertFile and KeyFile (tls.certFile, tls.keyFile) are presented as the
	// slave's client certificate over TLS, when set.
	CertFile, KeyFile string
	// TLS is the client configuration built from the files at load; nil
	// without CAFile.
	TLS *tls.Config
}

// String keeps the password out of %v and %+v.
func (r ReplicationClient) String() string {
	return "{User: " + r.User + ", PasswordFile: " + r.PasswordFile + ", CAFile: " + r.CAFile + "}"
}

// GoString keeps the password out of %#v.
func (r ReplicationClient) GoString() string { return "config.ReplicationClient" + r.String() }

func readReplicationClient(f *field) ReplicationClient {
	r := ReplicationClient{
		User:         f.str(keyBrokerUser, ""),
		PasswordFile: f.path(keyBrokerPasswordFile, ""),
		CAFile:       f.path(keyTLSCAFile, ""),
	}
	if r.PasswordFile == "." {
		r.PasswordFile = ""
	}
	if r.CAFile == "." {
		r.CAFile = f.path(keyTLSClientCAFileFallback, "")
	}
	if r.CAFile == "." {
		r.CAFile = ""
	}
	switch {
	case r.User == "" && r.PasswordFile != "":
		f.fail(keyBrokerPasswordFile, r.PasswordFile, "", "needs %s: the user a slave authenticates to its master as", keyBrokerUser)
	case r.User != "" && r.PasswordFile == "":
		f.fail(keyBrokerUser, r.User, "", "needs %s: a file (mode 0600) holding the user's password", keyBrokerPasswordFile)
	case r.User != "":
		pw, err := secretfile.Read(r.PasswordFile)
		if err != nil {
			f.fail(keyBrokerPasswordFile, r.PasswordFile, "", "cannot be used: %v", err)
		}
		r.Password = pw
	}
	if r.CAFile != "" && f.err == nil {
		cert, key := f.str(keyTLSCertFileFallback, ""), f.str(keyTLSKeyFileFallback, "")
		cfg, err := tlsconf.Client(r.CAFile, cert, key)
		if err != nil {
			f.fail(keyTLSCAFile, r.CAFile, "", "cannot be used: %v", err)
		}
		r.CertFile, r.KeyFile, r.TLS = cert, key, cfg
	}
	return r
}
