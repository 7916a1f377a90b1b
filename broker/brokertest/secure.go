package brokertest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/internal/security"
	"github.com/metaq-go/metaq/internal/tlsconf"
	"github.com/metaq-go/metaq/internal/tlsconf/tlstest"
)

// Security describes a secured test broker: TLS with a certificate CA
// issued, password authentication for Users (anonymous clients refused),
// and the ACL rules of ACL.
type Security struct {
	// CA issues the broker's certificate; nil = no TLS.
	CA *tlstest.CA
	// ClientCA, with CA, requires client certificates it signed (mutual TLS).
	ClientCA *tlstest.CA
	// Users maps user names to passwords; nil = no users file.
	Users map[string]string
	// ACL is the YAML ACL file's content; "" = no ACL file (every principal
	// may do everything except admin operations).
	ACL string
}

// Secure returns a Modify function that makes a broker serve TLS and check
// credentials as s says; compose it with other edits in Options.Modify.
// Failed authentications are delayed only a millisecond.
func Secure(tb testing.TB, s Security) func(*broker.Options) {
	tb.Helper()
	dir := tb.TempDir()
	var srv *tlsconf.Server
	if s.CA != nil {
		cert, key := s.CA.Issue(tb, "broker")
		clientCA := ""
		if s.ClientCA != nil {
			clientCA = s.ClientCA.CertFile
		}
		var err error
		if srv, err = tlsconf.NewServer(cert, key, clientCA); err != nil {
			tb.Fatalf("brokertest: TLS: %v", err)
		}
	}
	sec := broker.SecurityOptions{Anonymous: broker.AnonymousRefused, FailureDelay: time.Millisecond, MaxFailureDelay: 2 * time.Millisecond}
	if s.Users != nil {
		u := security.NewUsers()
		for name, pw := range s.Users {
			c, err := security.NewCredentials(name, pw)
			if err == nil {
				err = u.Set(name, c)
			}
			if err != nil {
				tb.Fatalf("brokertest: user %s: %v", name, err)
			}
		}
		sec.UsersFile = filepath.Join(dir, "users.yaml")
		if err := u.Save(sec.UsersFile); err != nil {
			tb.Fatalf("brokertest: users file: %v", err)
		}
	}
	if s.ACL != "" {
		sec.ACLFile = filepath.Join(dir, "acl.yaml")
		if err := os.WriteFile(sec.ACLFile, []byte(s.ACL), 0o600); err != nil {
			tb.Fatalf("brokertest: ACL file: %v", err)
		}
	}
	return func(o *broker.Options) {
		o.TLS = srv
		o.Security = sec
	}
}
