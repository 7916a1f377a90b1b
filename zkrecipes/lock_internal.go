package zkrecipes

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// This file holds the sequential-node contention machinery shared by Mutex,
// RWLock, Semaphore and LeaderLatch (Curator's LockInternals): every
// participant creates a protected ephemeral-sequential node, lists the
// directory once per wake-up, and watches exactly one other node (the one it
// waits for) with a data watch — never the directory's children.

// errNodeGone reports that a participant's own node disappeared while the
// session that created it is still alive (someone deleted it).
var errNodeGone = fmt.Errorf("zkrecipes: participant node was deleted: %w", zk.ErrNoNode)

// ownedNode is a node together with the session that created it.
type ownedNode struct {
	path  string
	owner int64 // EphemeralOwner: the session whose end deletes the node
}

// decideFunc says, from the sorted participant names and our index among
// them, whether we hold the recipe, and if not which name to watch.
type decideFunc func(sorted []string, idx int) (acquired bool, watch string)

// decidePredecessor: the lowest node holds; everybody else watches the node just before it.
func decidePredecessor(sorted []string, idx int) (bool, string) {
	if idx == 0 {
		return true, ""
	}
	return false, sorted[idx-1]
}

// nodeKind returns the recipe name part of a sequential node name:
// "_c_<guid>-lock-0000000007" and "lock-0000000007" both give "lock-".
func nodeKind(name string) string {
	if len(name) < 10 {
		return ""
	}
	name = name[:len(name)-10]
	if ProtectedGUID(name) != "" {
		return name[len(ProtectedPrefix)+33:]
	}
	return name
}

// participants filters kids to the sequential nodes of the given kinds and
// sorts them by sequence (each name parsed once: this runs on every wake-up).
func participants(kids []string, kinds ...string) []string {
	type entry struct {
		name string
		seq  int64
	}
	es := make([]entry, 0, len(kids))
	for _, k := range kids {
		if seq, err := Sequence(k); err == nil && slices.Contains(kinds, nodeKind(k)) {
			es = append(es, entry{k, seq})
		}
	}
	slices.SortFunc(es, func(a, b entry) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.name
	}
	return out
}

// createOwned creates a protected ephemeral-sequential node under dir and
// learns which session owns it. When the session id is the same before and
// after the create, that session made the node (go-zookeeper announces a new
// session before it sends any queued request); otherwise the owner is read
// from the node's Stat.
func (s *Session) createOwned(ctx context.Context, dir, name string, data []byte) (ownedNode, error) {
	before := s.ID()
	p, err := s.CreateProtected(ctx, dir, name, data, true)
	if err != nil {
		return ownedNode{}, err
	}
	if after := s.ID(); before != 0 && before == after {
		return ownedNode{path: p, owner: before}, nil
	}
	ok, st, err := s.Exists(ctx, p)
	if err != nil {
		s.deleteInBackground(ownedNode{path: p, owner: s.ID()})
		return ownedNode{}, err
	}
	if !ok {
		return ownedNode{}, fmt.Errorf("zkrecipes: node %s vanished right after its create: %w", p, ErrSessionLost)
	}
	return ownedNode{path: p, owner: st.EphemeralOwner}, nil
}

// waitSession waits until the connection is back while session owner is
// still the current session. It returns ErrSessionLost if that session ended
// (even if a new one is up), ErrClosed if the Session was closed, or ctx's error.
func (s *Session) waitSession(ctx context.Context, owner int64) error {
	ctx2, cancel := context.WithCancel(ctx)
	defer cancel()
	exp := s.Expired(owner)
	go func() {
		select {
		case <-exp:
			cancel()
		case <-ctx2.Done():
		}
	}()
	err := s.WaitConnected(ctx2)
	switch {
	case errors.Is(err, ErrClosed):
		return err
	case s.ID() != owner:
		return ErrSessionLost
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	}
	return err
}

// awaitTurn waits until decide says node n holds the recipe (wait) or checks
// once (!wait). A node holds only while its creator session is the current
// session: a node left by an older session never makes anyone a holder.
// Errors: ErrSessionLost when n's session ended, errNodeGone when n was
// deleted, ctx's error, or a non-retriable ZooKeeper error.
func (s *Session) awaitTurn(ctx context.Context, dir string, n ownedNode, kinds []string, decide decideFunc, wait bool) (bool, error) {
	me := path.Base(n.path)
	for {
		if s.ID() != n.owner {
			return false, ErrSessionLost
		}
		kids, _, err := s.Children(ctx, dir)
		if err != nil {
			if rerr := s.retryAfter(ctx, n.owner, err); rerr != nil {
				return false, rerr
			}
			continue
		}
		sorted := participants(kids, kinds...)
		idx := slices.Index(sorted, me)
		if idx < 0 {
			if s.ID() != n.owner {
				return false, ErrSessionLost
			}
			return false, fmt.Errorf("%w: %s", errNodeGone, n.path)
		}
		ok, watch := decide(sorted, idx)
		if ok {
			if s.ID() != n.owner {
				return false, ErrSessionLost
			}
			return true, nil
		}
		if !wait {
			return false, nil
		}
		// GetW, not ExistsW: on a missing node it fails without leaving a watch behind.
		_, _, ch, err := s.GetW(ctx, path.Join(dir, watch))
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			if rerr := s.retryAfter(ctx, n.owner, err); rerr != nil {
				return false, rerr
			}
			continue
		}
		if _, err := s.WaitEvent(ctx, n.owner, ch); err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrSessionLost) {
				return false, err
			}
			// The watch was dropped (connection closing or session expiring): re-check.
			if rerr := s.waitSession(ctx, n.owner); rerr != nil {
				return false, rerr
			}
		}
	}
}

// retryAfter decides what to do after a failed operation on behalf of session
// owner: nil means "try again" (the connection is back, same session).
func (s *Session) retryAfter(ctx context.Context, owner int64, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, zk.ErrSessionExpired) {
		return ErrSessionLost
	}
	if !IsRetriable(err) {
		return err
	}
	return s.waitSession(ctx, owner)
}

// releaseNode deletes n, retrying through connection loss while its session
// lives. If ctx ends first, the delete continues in the background until the
// node is gone or its session ends. A node already gone is not an error.
func (s *Session) releaseNode(ctx context.Context, n ownedNode) error {
	for {
		err := s.Delete(ctx, n.path, -1)
		if err == nil || errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if s.ID() != n.owner {
			return nil // the session ended: ZooKeeper deletes its ephemeral nodes
		}
		if ctx.Err() != nil {
			s.deleteInBackground(n)
			return ctx.Err()
		}
		if rerr := s.retryAfter(ctx, n.owner, err); rerr != nil {
			if errors.Is(rerr, ErrSessionLost) {
				return nil
			}
			s.deleteInBackground(n)
			return err
		}
	}
}

// deleteInBackground deletes n without blocking the caller; it gives up when
// n's session ends (the node goes with it) or after a few session timeouts.
func (s *Session) deleteInBackground(n ownedNode) {
	if n.path == "" {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*s.Timeout())
		defer cancel()
		for ctx.Err() == nil {
			err := s.Delete(ctx, n.path, -1)
			if err == nil || errors.Is(err, zk.ErrNoNode) || s.ID() != n.owner || errors.Is(err, ErrClosed) {
				return
			}
			if !IsRetriable(err) && !errors.Is(err, context.DeadlineExceeded) {
				return
			}
			if s.waitSession(ctx, n.owner) != nil {
				return
			}
		}
	}()
}

// backoff waits d (doubled up to max for the next call) or until ctx ends.
func backoff(ctx context.Context, d *time.Duration, max time.Duration) error {
	t := time.NewTimer(*d)
	defer t.Stop()
	*d = min(2**d, max)
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// validDir checks a recipe directory path.
func validDir(dir string) error {
	if err := validatePath(dir); err != nil {
		return err
	}
	if dir == "/" || strings.HasSuffix(dir, "/") {
		return fmt.Errorf("%w: %q: use a dedicated directory such as /locks/name", ErrBadPath, dir)
	}
	return nil
}
