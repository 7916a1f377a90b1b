package zkrecipes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/go-zookeeper/zk"
)

// ACLProvider chooses the ACL of a node this Session creates from its path
// (the session path, before any chroot), the way Curator's ACLProvider does.
// It returns nil for the Session's default ACL, or an error to refuse the
// creation (e.g. a node that only another identity may create).
type ACLProvider func(path string) ([]zk.ACL, error)

// WithACLProvider makes p choose the ACL of every node the Session creates
// (Create, EnsurePath, CreateParents, CreateProtected and Multi creates
// without an explicit ACL); where it returns nil the default ACL applies
// (WithACL, WithDigestAuth).
func WithACLProvider(p ACLProvider) Option {
	return func(o *sessionOptions) error { o.aclProvider = p; return nil }
}

// aclFor is the ACL of a new node at session path p.
func (s *Session) aclFor(p string) ([]zk.ACL, error) {
	if s.opts.aclProvider != nil {
		acl, err := s.opts.aclProvider(p)
		if err != nil {
			return nil, fmt.Errorf("zkrecipes: create %s: %w", p, err)
		}
		if acl != nil {
			return acl, nil
		}
	}
	return s.opts.acl, nil
}

// ErrNoAuth re-exports zk.ErrNoAuth: the node's ACL does not let this
// session's identity do that.
var ErrNoAuth = zk.ErrNoAuth

// ParseDigest splits ZooKeeper digest credentials "user:password". Its
// errors never contain the password.
func ParseDigest(s string) (user, password string, err error) {
	user, password, ok := strings.Cut(strings.TrimRight(s, "\r\n"), ":")
	if !ok || user == "" || password == "" {
		return "", "", errors.New("ZooKeeper digest credentials must be user:password with a non-empty user and password")
	}
	return user, password, nil
}

// ReadDigestFile reads digest credentials "user:password" (one line) from a
// file that only its owner may read: a file with any group or world
// permission is refused, since anyone who reads it acts as that identity.
func ReadDigestFile(path string) (user, password string, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", "", fmt.Errorf("ZooKeeper credentials file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", "", fmt.Errorf("ZooKeeper credentials file %s has mode %04o: it must not be readable by group or others (chmod 600 %s)", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("ZooKeeper credentials file: %w", err)
	}
	user, password, err = ParseDigest(strings.TrimSpace(string(b)))
	if err != nil {
		return "", "", fmt.Errorf("ZooKeeper credentials file %s: %w", path, err)
	}
	return user, password, nil
}

// DigestID is the id ZooKeeper's digest scheme gives user with password:
// "user:base64(sha1(user:password))", as it appears in ACLs.
func DigestID(user, password string) string { return zk.DigestACL(zk.PermRead, user, password)[0].ID }

// DigestIdentity returns the user and the ACL id (DigestID) the session
// authenticates as with the digest scheme ("", "" without WithDigestAuth).
func (s *Session) DigestIdentity() (user, id string) {
	for _, a := range s.opts.auth {
		if a.scheme == "digest" {
			u, pw, _ := strings.Cut(string(a.data), ":")
			return u, DigestID(u, pw)
		}
	}
	return "", ""
}

// GetACL reads a node's ACL.
func (s *Session) GetACL(ctx context.Context, p string) ([]zk.ACL, *zk.Stat, error) {
	fp, err := s.full(p)
	if err != nil {
		return nil, nil, err
	}
	type res struct {
		acl []zk.ACL
		st  *zk.Stat
	}
	r, err := doR(ctx, func() (r res, e error) { r.acl, r.st, e = s.Conn().GetACL(fp); return r, e })
	return r.acl, r.st, wrap("getacl", p, err)
}

// SetACL replaces a node's ACL if its ACL version (Stat.Aversion) matches
// (-1: any version).
func (s *Session) SetACL(ctx context.Context, p string, acl []zk.ACL, version int32) (*zk.Stat, error) {
	fp, err := s.full(p)
	if err != nil {
		return nil, err
	}
	st, err := doR(ctx, func() (*zk.Stat, error) { return s.Conn().SetACL(fp, acl, version) })
	return st, wrap("setacl", p, err)
}
