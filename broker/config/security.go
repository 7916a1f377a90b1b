package config

import (
	"net"
	"strings"
)

// [security] keys of TLS and the admin port (docs/security-tls.md).
const (
	keyTLSCertFile     = "tls.certFile"
	keyTLSKeyFile      = "tls.keyFile"
	keyTLSClientCAFile = "tls.clientCAFile"
	keyAdminTokenFile  = "adminTokenFile"
	keyPlaintextPort   = "plaintextPort"
)

// DefaultAdminHost is where the admin port binds unless adminHost says otherwise.
const DefaultAdminHost = "127.0.0.1"

// Security holds [security]: TLS on the broker, admin and replication
// ports, the admin port's bearer token (docs/security-tls.md), and wire
// authentication and authorisation (docs/SECURITY.md).
type Security struct {
	// UsersFile is usersFile: the users file (`metaq users add`), '~'
	// expanded; "" = no password authentication.
	UsersFile string
	// ACLFile is aclFile: the ACL rules; "" = every principal may do
	// everything except admin operations (once security is on).
	ACLFile string
	// AllowAnonymous is allowAnonymous: unauthenticated clients act as the
	// principal "anonymous". Default: false when usersFile is set, else true.
	AllowAnonymous bool

	// TLSCertFile and TLSKeyFile (tls.certFile, tls.keyFile; PEM): when
	// set, serverPort and the admin port speak TLS only (1.2 and later).
	TLSCertFile, TLSKeyFile string
	// TLSClientCAFile (tls.clientCAFile): CA bundle that client
	// certificates must chain to; set, every client must present one
	// (mutual TLS) and its Subject CommonName is its principal.
	TLSClientCAFile string
	// AdminTokenFile (adminTokenFile): file holding the bearer token that
	// the admin port's mutating endpoints require. It must not be
	// readable by its group or others (mode 0600).
	AdminTokenFile string
	// PlaintextPort (plaintextPort): with TLS on, an extra port speaking
	// the plain MetaQ protocol for clients without TLS; 0 = none (default).
	PlaintextPort int
}

// TLS reports whether TLS is configured.
func (s Security) TLS() bool { return s.TLSCertFile != "" }

// Enabled reports whether the broker checks principals at all: a users
// file or an ACL file is set, or anonymous access is refused.
func (s Security) Enabled() bool {
	return s.UsersFile != "" || s.ACLFile != "" || !s.AllowAnonymous
}

// Security returns the [security] settings.
func (c *Config) Security() Security { return c.security }

func readSecurity(f *field, warnings *[]string) Security {
	s := Security{
		TLSCertFile:     f.optionalPath(keyTLSCertFile),
		TLSKeyFile:      f.optionalPath(keyTLSKeyFile),
		TLSClientCAFile: f.optionalPath(keyTLSClientCAFile),
		AdminTokenFile:  f.optionalPath(keyAdminTokenFile),
		PlaintextPort:   int(f.int(keyPlaintextPort, 0, 0, 65535)),
		UsersFile:       f.optionalPath(keyUsersFile),
		ACLFile:         f.optionalPath(keyACLFile),
	}
	s.AllowAnonymous = f.boolean(keyAllowAnonymous, s.UsersFile == "")
	if !s.AllowAnonymous && s.UsersFile == "" && f.err == nil {
		*warnings = append(*warnings, "[security] allowAnonymous=false without usersFile: only clients with a verified TLS "+
			"client certificate (tls.clientCAFile) can be served; set usersFile to let clients log in with a password")
	}
	return s
}

// optionalPath is a file path with '~' expanded, or "" when the key is not set.
func (f *field) optionalPath(key string) string {
	if _, _, ok := f.text(key); !ok {
		return ""
	}
	return f.path(key, "")
}

func (s Security) validate(b *Broker) error {
	switch {
	case s.TLSCertFile != "" && s.TLSKeyFile == "":
		return badValue(sectionSecurity, keyTLSKeyFile, "is missing: tls.certFile is set, so set tls.keyFile to its private key (PEM)")
	case s.TLSCertFile == "" && s.TLSKeyFile != "":
		return badValue(sectionSecurity, keyTLSCertFile, "is missing: tls.keyFile is set, so set tls.certFile to the broker's certificate (PEM)")
	case s.TLSClientCAFile != "" && s.TLSCertFile == "":
		return badValue(sectionSecurity, keyTLSClientCAFile, "needs TLS: set tls.certFile and tls.keyFile as well")
	case s.PlaintextPort != 0 && !s.TLS():
		return badValue(sectionSecurity, keyPlaintextPort, "%d is only for TLS setups (serverPort is already plaintext); remove it", s.PlaintextPort)
	case s.PlaintextPort != 0 && (s.PlaintextPort == b.ServerPort || s.PlaintextPort == b.AdminPort):
		return badValue(sectionSecurity, keyPlaintextPort, "%d is also serverPort or adminPort; use another port", s.PlaintextPort)
	}
	if net.ParseIP(b.AdminHost) == nil && (b.AdminHost == "" || strings.ContainsAny(b.AdminHost, " \t:/[]")) {
		return badValue(sectionSystem, keyAdminHost, "%q is not an IP address or host name to bind the admin port to (e.g. 127.0.0.1, or 0.0.0.0 for every interface)", b.AdminHost)
	}
	return nil
}
