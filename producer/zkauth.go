package producer

import (
	"errors"

	"github.com/metaq-go/metaq/zkrecipes"
)

// WithZKDigestAuth authenticates the ZooKeeper session with the digest
// scheme as user (the group identity, docs/security-zookeeper.md): the
// group's nodes it creates are writable only by that identity and readable by
// all. Without it the session is anonymous and nodes get the world ACL, as
// MetaQ's clients do. Prefer WithZKDigestAuthFile, which keeps the password
// out of the program.
func WithZKDigestAuth(user, password string) Option {
	return func(o *options) error {
		if user == "" || password == "" {
			return errors.New("producer: WithZKDigestAuth: user and password must not be empty")
		}
		o.zkUser, o.zkPassword = user, password
		return nil
	}
}

// WithZKDigestAuthFile is WithZKDigestAuth with the credentials "user:password"
// read from file, which must not be readable by group or others.
func WithZKDigestAuthFile(file string) Option {
	return func(o *options) error {
		u, pw, err := zkrecipes.ReadDigestFile(file)
		if err != nil {
			return errors.New("producer: " + err.Error())
		}
		o.zkUser, o.zkPassword = u, pw
		return nil
	}
}
