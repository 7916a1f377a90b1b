package config

// Security holds the [security] keys of wire authentication and
// authorisation (docs/SECURITY.md).
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
}

// Enabled reports whether the broker checks principals at all: a users
// file or an ACL file is set, or anonymous access is refused.
func (s Security) Enabled() bool {
	return s.UsersFile != "" || s.ACLFile != "" || !s.AllowAnonymous
}

func readSecurity(f *field, warnings *[]string) Security {
	s := Security{}
	if _, _, ok := f.text(keyUsersFile); ok {
		s.UsersFile = f.path(keyUsersFile, "")
	}
	if _, _, ok := f.text(keyACLFile); ok {
		s.ACLFile = f.path(keyACLFile, "")
	}
	s.AllowAnonymous = f.boolean(keyAllowAnonymous, s.UsersFile == "")
	if !s.AllowAnonymous && s.UsersFile == "" && f.err == nil {
		*warnings = append(*warnings, "[security] allowAnonymous=false without usersFile: only clients with a verified TLS "+
			"client certificate (tls.clientCAFile) can be served; set usersFile to let clients log in with a password")
	}
	return s
}
