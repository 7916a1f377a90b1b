package coordinator

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/go-zookeeper/zk"

	"github.com/metaq-go/metaq/zkrecipes"
)

// ACL policy (docs/security-zookeeper.md). A session with a digest identity
// creates every node of the layout with an ACL chosen by the node's class:
// the creating identity ("auth" scheme) may do everything, everyone may read
// (MetaQ's Java/Python/Ruby clients read the broker and topic nodes without
// credentials), and nobody else may write, delete, create children or change
// the ACL. The only world permission beyond READ is CREATE on the consumers
// node, so that any client (MetaQ's own included) can start a new group.
// Sessions without an identity keep the world ACL, as MetaQ does.

// NodeClass is the class of a ZooKeeper path in the ACL matrix.
type NodeClass int

// Node classes.
const (
	// ClassForeign: not under the cluster root; not metaq's to decide.
	ClassForeign NodeClass = iota
	// ClassRoot: the cluster root (zkRoot) and its ancestors; the cluster identity writes it.
	ClassRoot
	// ClassCluster: every node under the root outside the consumers subtree
	// (brokers, topics, accepted topics, replication); the cluster identity writes it.
	ClassCluster
	// ClassConsumers: the consumers node itself; the cluster identity owns it,
	// everyone may create a group under it.
	ClassConsumers
	// ClassGroup: a consumer group's root and everything under it (members,
	// MetaQ ids, assignment, owners, fences, offsets); the group identity writes it.
	ClassGroup
)

func (c NodeClass) String() string {
	switch c {
	case ClassRoot:
		return "root"
	case ClassCluster:
		return "cluster"
	case ClassConsumers:
		return "consumers"
	case ClassGroup:
		return "group"
	}
	return "foreign"
}

// Class returns the class of session path p.
func (p Paths) Class(node string) NodeClass {
	consumers := p.Consumers()
	switch {
	case node == p.Root || node == "/" || strings.HasPrefix(p.Root, node+"/"):
		return ClassRoot
	case node == consumers:
		return ClassConsumers
	case strings.HasPrefix(node, consumers+"/"):
		return ClassGroup
	case strings.HasPrefix(node, p.Root+"/"):
		return ClassCluster
	}
	return ClassForeign
}

// ClassACL is the ACL a session with a digest identity gives a new node of
// class c: the creator ("auth") may do everything, the world may read (and,
// on the consumers node, create groups). Nil for ClassForeign.
func ClassACL(c NodeClass) []zk.ACL {
	world := int32(zk.PermRead)
	switch c {
	case ClassForeign:
		return nil
	case ClassConsumers:
		world |= zk.PermCreate
	}
	return append(zk.AuthACL(zk.PermAll), zk.WorldACL(world)...)
}

// ErrClusterNode means a client acting for a group would have to create a
// node that belongs to the cluster identity.
var ErrClusterNode = errors.New("the node belongs to the cluster and is missing: start a broker of this cluster " +
	"with its ZooKeeper identity (zk.zkAuth) first, it creates the layout")

// ACLRole says which nodes a session may create.
type ACLRole int

// ACL roles.
const (
	// RoleCluster: brokers and operators' tools acting as the cluster identity; create any class.
	RoleCluster ACLRole = iota
	// RoleGroup: consumers (and producers) with a group identity; create group nodes only, so
	// that a client started before any broker cannot take the root or the consumers node.
	RoleGroup
)

// ACLProvider returns the zkrecipes ACL provider of a session with a digest
// identity acting in role r (pass it with zkrecipes.WithACLProvider next to
// zkrecipes.WithDigestAuth).
func (p Paths) ACLProvider(r ACLRole) zkrecipes.ACLProvider {
	return func(node string) ([]zk.ACL, error) {
		c := p.Class(node)
		if r == RoleGroup && (c == ClassRoot || c == ClassCluster || c == ClassConsumers) {
			return nil, ErrClusterNode
		}
		return ClassACL(c), nil
	}
}

// SessionOptions returns the zkrecipes options that authenticate a session
// as user with password (digest scheme) and give the nodes it creates the
// ACLs of the matrix for role r; none when user is empty (world ACL, as
// MetaQ does).
func (p Paths) SessionOptions(user, password string, r ACLRole) []zkrecipes.Option {
	if user == "" {
		return nil
	}
	return []zkrecipes.Option{zkrecipes.WithDigestAuth(user, password), zkrecipes.WithACLProvider(p.ACLProvider(r))}
}

// CheckIdentity makes a wrong password a clear error before anything else
// fails with NoAuth: it reads the ACL of node (when it exists) and, if the
// node is writable only by digest identities, reports whether the session's
// identity is not one of them, naming the users (never a password or hash).
func CheckIdentity(ctx context.Context, s *zkrecipes.Session, node string) error {
	user, id := s.DigestIdentity()
	if user == "" {
		return nil
	}
	acl, _, err := s.GetACL(ctx, node)
	if errors.Is(err, zkrecipes.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	var users []string
	for _, a := range acl {
		if a.Perms&zk.PermWrite == 0 {
			continue
		}
		switch a.Scheme {
		case "world", "auth":
			return nil
		case "digest":
			if a.ID == id {
				return nil
			}
			users = append(users, strings.SplitN(a.ID, ":", 2)[0])
		default:
			return nil // another scheme (ip, sasl, x509): not ours to judge
		}
	}
	if slices.Contains(users, user) {
		return fmt.Errorf("ZooKeeper refused digest user %q on %s: wrong password (the node was secured with another password for that user; check zk.zkAuth / the credentials file)", user, node)
	}
	return fmt.Errorf("ZooKeeper node %s is writable only by digest user(s) %s, this session authenticates as %q: use that identity's credentials",
		node, strings.Join(users, ", "), user)
}

// Secure tightens the ACL of node (and, with recurse, of every node below
// it) that is still open to the world for writing, as a cluster or group
// created before digest identities were configured: such a node gets the
// ACL of its class with the session's identity. Nodes already restricted,
// and nodes this identity may not read or re-ACL, are left alone; a node
// changed concurrently (by another broker securing the same tree) too. It
// returns how many nodes it changed.
func Secure(ctx context.Context, s *zkrecipes.Session, p Paths, node string, recurse bool) (int, error) {
	if user, _ := s.DigestIdentity(); user == "" {
		return 0, errors.New("securing ZooKeeper nodes needs a digest identity (zk.zkAuth, --zk-auth-file or METAQ_ZK_AUTH)")
	}
	acl, st, err := s.GetACL(ctx, node)
	if notOurs(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	if want := ClassACL(p.Class(node)); want != nil && worldWritable(acl) {
		_, err := s.SetACL(ctx, node, want, st.Aversion)
		switch {
		case err == nil:
			n++
		case notOurs(err), errors.Is(err, zkrecipes.ErrBadVersion):
			// Gone, not ours to change (the world lacks ADMIN), or
			// another broker re-ACLed it meanwhile: nothing to do.
		default:
			return n, err
		}
	}
	if !recurse {
		return n, nil
	}
	kids, _, err := s.Children(ctx, node)
	if notOurs(err) {
		return n, nil
	}
	if err != nil {
		return n, err
	}
	for _, k := range kids {
		m, err := Secure(ctx, s, p, path.Join(node, k), true)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// notOurs reports an error after which Secure leaves a node alone: it is
// gone, or its ACL does not let this identity read or change it.
func notOurs(err error) bool {
	return errors.Is(err, zkrecipes.ErrNoNode) || errors.Is(err, zkrecipes.ErrNoAuth)
}

// worldWritable reports whether acl lets anyone change or delete below the node.
func worldWritable(acl []zk.ACL) bool {
	for _, a := range acl {
		if a.Scheme == "world" && a.Perms&(zk.PermWrite|zk.PermDelete|zk.PermAdmin) != 0 {
			return true
		}
	}
	return false
}

// SecureCluster tightens the cluster's own nodes (Secure): the root, the
// brokers and replication subtrees and the consumers node (not the groups:
// their identity secures them, e.g. `metaq zk secure`). It also creates the
// consumers node, so that clients with a group identity can create their
// groups. A broker with a digest identity calls it when it starts.
func SecureCluster(ctx context.Context, s *zkrecipes.Session, p Paths) (int, error) {
	if err := s.EnsurePath(ctx, p.Consumers()); err != nil {
		return 0, err
	}
	total := 0
	for _, t := range []struct {
		node    string
		recurse bool
	}{{p.Root, false}, {p.Brokers(), true}, {p.MetaQRoot(), true}, {p.Consumers(), false}} {
		n, err := Secure(ctx, s, p, t.node, t.recurse)
		total += n
		if err != nil {
			return total, fmt.Errorf("secure ZooKeeper nodes under %s: %w", t.node, err)
		}
	}
	return total, nil
}
