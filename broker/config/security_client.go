package config

// [security] keys of a slave's connection to its master
// (docs/security-clients.md).
const (
	keyBrokerUser         = "brokerUser"
	keyBrokerPasswordFile = "brokerPasswordFile"
	keyTLSCAFile          = "tls.caFile"
)

// ReplicationClient is how a slave connects to its master ([security]).
// The files are read when the broker starts (broker.ApplyReplicationClient).
type ReplicationClient struct {
	// User (brokerUser) authenticates the slave to its master with
	// SCRAM-SHA-256; "" = no authentication.
	User string
	// PasswordFile (brokerPasswordFile) holds the user's password; set
	// exactly when User is.
	PasswordFile string
	// TLS: the slave connects to its master over TLS — tls.caFile or
	// tls.clientCAFile is set, or this broker itself serves TLS (a replica
	// set shares its TLS setting).
	TLS bool
	// CAFile (tls.caFile, default tls.clientCAFile) is the CA that signed
	// the master's certificate; "" = the system's CAs.
	CAFile string
	// CertFile and KeyFile (tls.certFile, tls.keyFile) are presented as the
	// slave's client certificate, when set (a master with
	// tls.clientCAFile requires one).
	CertFile, KeyFile string
}

// ReplicationClient returns how a slave connects to its master ([security]
// brokerUser, brokerPasswordFile, tls.caFile).
func (c *Config) ReplicationClient() ReplicationClient { return c.replClient }

func readReplicationClient(f *field, s Security) ReplicationClient {
	r := ReplicationClient{
		User:         f.str(keyBrokerUser, ""),
		PasswordFile: f.optionalPath(keyBrokerPasswordFile),
		CAFile:       f.optionalPath(keyTLSCAFile),
		CertFile:     s.TLSCertFile,
		KeyFile:      s.TLSKeyFile,
	}
	if r.CAFile == "" {
		r.CAFile = s.TLSClientCAFile
	}
	r.TLS = r.CAFile != "" || s.TLS()
	switch {
	case r.User == "" && r.PasswordFile != "":
		f.fail(keyBrokerPasswordFile, r.PasswordFile, "", "needs %s: the user a slave authenticates to its master as", keyBrokerUser)
	case r.User != "" && r.PasswordFile == "":
		f.fail(keyBrokerUser, r.User, "", "needs %s: a file (mode 0600) holding the user's password", keyBrokerPasswordFile)
	}
	return r
}
