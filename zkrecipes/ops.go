package zkrecipes

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/go-zookeeper/zk"
)

// CreateMode says what kind of node Create makes.
type CreateMode int32

// Create modes (values are ZooKeeper's flags).
const (
	Persistent           CreateMode = 0
	Ephemeral            CreateMode = CreateMode(zk.FlagEphemeral)
	PersistentSequential CreateMode = CreateMode(zk.FlagSequence)
	EphemeralSequential  CreateMode = CreateMode(zk.FlagEphemeral | zk.FlagSequence)
)

func validatePath(p string) error {
	if p == "" || p[0] != '/' || (len(p) > 1 && strings.HasSuffix(p, "/")) || strings.Contains(p, "//") || strings.ContainsRune(p, 0) {
		return fmt.Errorf("%w: %q (want an absolute path like /a/b without a trailing slash)", ErrBadPath, p)
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("%w: %q has a relative segment", ErrBadPath, p)
		}
	}
	return nil
}

// full maps a session path to the server path (chroot applied).
func (s *Session) full(p string) (string, error) {
	if err := validatePath(p); err != nil {
		return "", err
	}
	if s.opts.chroot == "" {
		return p, nil
	}
	if p == "/" {
		return s.opts.chroot, nil
	}
	return s.opts.chroot + p, nil
}

// local maps a server path back to a session path.
func (s *Session) local(p string) string {
	if s.opts.chroot == "" {
		return p
	}
	if p == s.opts.chroot {
		return "/"
	}
	return strings.TrimPrefix(p, s.opts.chroot)
}

// do runs op and returns its error, or ctx's error if ctx ends first (the
// operation may still complete on the server in that case).
func do(ctx context.Context, op func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ctx.Done() == nil {
		return op()
	}
	done := make(chan error, 1)
	go func() { done <- op() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// doR is do for operations with results. The results travel with the
// operation's outcome, so an operation that outlives its ctx never writes to
// variables the caller is already reading (a data race with plain do and
// captured result variables).
func doR[T any](ctx context.Context, op func() (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	if ctx.Done() == nil {
		return op()
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := op()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// nodeResult carries the results of the read operations through doR.
type nodeResult struct {
	data []byte
	kids []string
	ok   bool
	st   *zk.Stat
	ch   <-chan zk.Event
}

func wrap(op, p string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, zk.ErrNoAuth) {
		return fmt.Errorf("zkrecipes: %s %s: %w (the node's ACL does not allow this to the session's identity: check the ZooKeeper digest credentials)", op, p, err)
	}
	return fmt.Errorf("zkrecipes: %s %s: %w", op, p, err)
}

// ACL returns the ACL this Session puts on the nodes it creates.
func (s *Session) ACL() []zk.ACL { return s.opts.acl }

// Create creates a node and returns its path (with the sequence suffix for
// sequential modes).
func (s *Session) Create(ctx context.Context, p string, data []byte, mode CreateMode) (string, error) {
	fp, err := s.full(p)
	if err != nil {
		return "", err
	}
	acl, err := s.aclFor(p)
	if err != nil {
		return "", err
	}
	created, err := doR(ctx, func() (string, error) {
		return s.Conn().Create(fp, data, int32(mode), acl)
	})
	if err != nil {
		return "", wrap("create", p, err)
	}
	return s.local(created), nil
}

// EnsurePath creates p and its missing parents as empty persistent nodes.
func (s *Session) EnsurePath(ctx context.Context, p string) error {
	if err := validatePath(p); err != nil {
		return err
	}
	if p == "/" {
		return nil
	}
	if ok, _, err := s.Exists(ctx, p); err != nil || ok {
		return err
	}
	if err := s.EnsurePath(ctx, path.Dir(p)); err != nil {
		return err
	}
	_, err := s.Create(ctx, p, nil, Persistent)
	if errors.Is(err, zk.ErrNodeExists) {
		return nil
	}
	return err
}

// CreateParents creates a node like Create, creating missing parents first.
func (s *Session) CreateParents(ctx context.Context, p string, data []byte, mode CreateMode) (string, error) {
	created, err := s.Create(ctx, p, data, mode)
	if !errors.Is(err, zk.ErrNoNode) {
		return created, err
	}
	if err := s.EnsurePath(ctx, path.Dir(p)); err != nil {
		return "", err
	}
	return s.Create(ctx, p, data, mode)
}

// Get reads a node's data.
func (s *Session) Get(ctx context.Context, p string) ([]byte, *zk.Stat, error) {
	fp, err := s.full(p)
	if err != nil {
		return nil, nil, err
	}
	r, err := doR(ctx, func() (r nodeResult, e error) { r.data, r.st, e = s.Conn().Get(fp); return r, e })
	return r.data, r.st, wrap("get", p, err)
}

// GetW reads a node's data and sets a data watch on it.
func (s *Session) GetW(ctx context.Context, p string) ([]byte, *zk.Stat, <-chan zk.Event, error) {
	fp, err := s.full(p)
	if err != nil {
		return nil, nil, nil, err
	}
	r, err := doR(ctx, func() (r nodeResult, e error) { r.data, r.st, r.ch, e = s.Conn().GetW(fp); return r, e })
	return r.data, r.st, r.ch, wrap("get", p, err)
}

// Exists reports whether a node exists.
func (s *Session) Exists(ctx context.Context, p string) (bool, *zk.Stat, error) {
	fp, err := s.full(p)
	if err != nil {
		return false, nil, err
	}
	r, err := doR(ctx, func() (r nodeResult, e error) { r.ok, r.st, e = s.Conn().Exists(fp); return r, e })
	return r.ok, r.st, wrap("exists", p, err)
}

// ExistsW reports whether a node exists and watches for its creation, change or deletion.
func (s *Session) ExistsW(ctx context.Context, p string) (bool, *zk.Stat, <-chan zk.Event, error) {
	fp, err := s.full(p)
	if err != nil {
		return false, nil, nil, err
	}
	r, err := doR(ctx, func() (r nodeResult, e error) { r.ok, r.st, r.ch, e = s.Conn().ExistsW(fp); return r, e })
	return r.ok, r.st, r.ch, wrap("exists", p, err)
}

// Children lists a node's children (names, unsorted).
func (s *Session) Children(ctx context.Context, p string) ([]string, *zk.Stat, error) {
	fp, err := s.full(p)
	if err != nil {
		return nil, nil, err
	}
	r, err := doR(ctx, func() (r nodeResult, e error) { r.kids, r.st, e = s.Conn().Children(fp); return r, e })
	return r.kids, r.st, wrap("children", p, err)
}

// ChildrenW lists a node's children and sets a child watch.
func (s *Session) ChildrenW(ctx context.Context, p string) ([]string, *zk.Stat, <-chan zk.Event, error) {
	fp, err := s.full(p)
	if err != nil {
		return nil, nil, nil, err
	}
	r, err := doR(ctx, func() (r nodeResult, e error) { r.kids, r.st, r.ch, e = s.Conn().ChildrenW(fp); return r, e })
	return r.kids, r.st, r.ch, wrap("children", p, err)
}

// Set writes a node's data if its version matches (-1: any version).
func (s *Session) Set(ctx context.Context, p string, data []byte, version int32) (*zk.Stat, error) {
	fp, err := s.full(p)
	if err != nil {
		return nil, err
	}
	st, err := doR(ctx, func() (*zk.Stat, error) { return s.Conn().Set(fp, data, version) })
	return st, wrap("set", p, err)
}

// Delete deletes a node if its version matches (-1: any version).
func (s *Session) Delete(ctx context.Context, p string, version int32) error {
	fp, err := s.full(p)
	if err != nil {
		return err
	}
	return wrap("delete", p, do(ctx, func() error { return s.Conn().Delete(fp, version) }))
}

// DeleteIfExists deletes a node and succeeds if it was already gone.
func (s *Session) DeleteIfExists(ctx context.Context, p string) error {
	err := s.Delete(ctx, p, -1)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return err
}

// Sync makes the connected server catch up with the leader for p.
func (s *Session) Sync(ctx context.Context, p string) error {
	fp, err := s.full(p)
	if err != nil {
		return err
	}
	return wrap("sync", p, do(ctx, func() error { _, e := s.Conn().Sync(fp); return e }))
}

// Multi runs operations atomically: all succeed or none does. ops are
// *zk.CreateRequest, *zk.DeleteRequest, *zk.SetDataRequest and
// *zk.CheckVersionRequest with session paths; created nodes get this
// Session's ACL (WithACLProvider, WithACL) when the request has none. On failure the error wraps the
// first failing operation's error (e.g. zk.ErrBadVersion).
func (s *Session) Multi(ctx context.Context, ops ...any) ([]zk.MultiResponse, error) {
	mapped := make([]any, len(ops))
	for i, op := range ops {
		switch r := op.(type) {
		case *zk.CreateRequest:
			c := *r
			if c.Acl == nil {
				acl, err := s.aclFor(c.Path)
				if err != nil {
					return nil, err
				}
				c.Acl = acl
			}
			if err := s.mapPath(&c.Path); err != nil {
				return nil, err
			}
			mapped[i] = &c
		case *zk.DeleteRequest:
			c := *r
			if err := s.mapPath(&c.Path); err != nil {
				return nil, err
			}
			mapped[i] = &c
		case *zk.SetDataRequest:
			c := *r
			if err := s.mapPath(&c.Path); err != nil {
				return nil, err
			}
			mapped[i] = &c
		case *zk.CheckVersionRequest:
			c := *r
			if err := s.mapPath(&c.Path); err != nil {
				return nil, err
			}
			mapped[i] = &c
		default:
			return nil, fmt.Errorf("zkrecipes: multi: unsupported operation %T", op)
		}
	}
	res, err := doR(ctx, func() ([]zk.MultiResponse, error) { return s.Conn().Multi(mapped...) })
	for i := range res {
		if res[i].String != "" {
			res[i].String = s.local(res[i].String)
		}
	}
	if err != nil {
		return res, wrap("multi", fmt.Sprintf("(%d operations)", len(ops)), err)
	}
	return res, nil
}

func (s *Session) mapPath(p *string) error {
	fp, err := s.full(*p)
	*p = fp
	return err
}

// WaitEvent waits for a watch event, the loss of session id, or the end of ctx.
// It returns ErrSessionLost when the session ends first.
func (s *Session) WaitEvent(ctx context.Context, id int64, ch <-chan zk.Event) (zk.Event, error) {
	select {
	case ev := <-ch:
		if ev.Err != nil {
			return ev, fmt.Errorf("zkrecipes: watch: %w", ev.Err)
		}
		ev.Path = s.local(ev.Path)
		return ev, nil
	case <-s.Expired(id):
		return zk.Event{}, ErrSessionLost
	case <-ctx.Done():
		return zk.Event{}, ctx.Err()
	}
}
