package zkrecipes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// EphemeralNode keeps an ephemeral node at a fixed path for as long as it
// runs (Curator's PersistentNode in ephemeral mode): it is created on Start,
// re-created when a new session replaces an expired one, and re-created if
// someone deletes it while connected (the node carries one exists watch, set
// by its owner).
//
// A node of an OLD session at the path is never fought over. When creating
// finds the path taken, the node's Stat.EphemeralOwner decides:
//   - the current session: it is ours (the reply to our create was lost) and
//     is adopted;
//   - a previous session of this EphemeralNode AND the data is ours: that
//     session was declared lost, so the node is a leftover of ours that the
//     server has not expired yet; it is deleted (conditional on its version)
//     and created again;
//   - anything else (another live or expiring session, or a persistent node):
//     it is waited for — a watch on it, and a create when it is gone. A
//     foreign persistent node therefore blocks the path until someone deletes it.
type EphemeralNode struct {
	s    *Session
	path string

	mu       sync.Mutex // guards the fields below
	data     []byte
	owner    int64          // session that created the current node, 0 if none
	previous map[int64]bool // earlier sessions of ours that created the node
	created  chan struct{}  // closed once the node first exists
	cancel   context.CancelFunc
	done     chan struct{}
	started  bool
	closed   bool
	lastErr  error
}

// NewEphemeralNode returns a node at path with data; Start it.
func NewEphemeralNode(s *Session, path string, data []byte) (*EphemeralNode, error) {
	if s == nil {
		return nil, fmt.Errorf("zkrecipes: ephemeral node %s: nil Session", path)
	}
	if err := validDir(path); err != nil {
		return nil, err
	}
	return &EphemeralNode{s: s, path: path, data: bytes.Clone(data), previous: map[int64]bool{},
		created: make(chan struct{})}, nil
}

// Path returns the node's path.
func (e *EphemeralNode) Path() string { return e.path }

// Start begins keeping the node and returns once it exists. If ctx ends first
// (for example while an old session's node is still in the way) the node is
// closed and the error returned.
func (e *EphemeralNode) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.started || e.closed {
		e.mu.Unlock()
		return fmt.Errorf("zkrecipes: ephemeral node %s: already started or closed", e.path)
	}
	e.started = true
	runCtx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	created := e.created
	e.mu.Unlock()
	go e.run(runCtx)
	select {
	case <-created:
		return nil
	case <-ctx.Done():
		e.mu.Lock()
		last := e.lastErr
		e.mu.Unlock()
		cctx, c := context.WithTimeout(context.Background(), e.s.Timeout())
		defer c()
		_ = e.Close(cctx)
		if last != nil {
			return fmt.Errorf("zkrecipes: ephemeral node %s: start: %w (last error: %v)", e.path, ctx.Err(), last)
		}
		return fmt.Errorf("zkrecipes: ephemeral node %s: start: %w", e.path, ctx.Err())
	}
}

// run keeps the node until ctx ends.
func (e *EphemeralNode) run(ctx context.Context) {
	defer close(e.done)
	delay := 50 * time.Millisecond
	for ctx.Err() == nil {
		if err := e.s.WaitConnected(ctx); err != nil {
			if errors.Is(err, ErrClosed) {
				return
			}
			continue
		}
		sid := e.s.ID()
		err := e.ensure(ctx, sid)
		if err == nil {
			err = e.watch(ctx, sid)
		}
		if errors.Is(err, ErrSessionLost) {
			// Let the Session finish declaring sid lost before trying again.
			t := time.NewTimer(e.s.Timeout())
			select {
			case <-e.s.Expired(sid):
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		if err != nil && ctx.Err() == nil {
			e.mu.Lock()
			e.lastErr = err
			e.mu.Unlock()
			if backoff(ctx, &delay, 2*time.Second) != nil {
				return
			}
			continue
		}
		delay = 50 * time.Millisecond
	}
}

// ensure makes the node exist and belong to session sid.
func (e *EphemeralNode) ensure(ctx context.Context, sid int64) error {
	for {
		e.mu.Lock()
		data := bytes.Clone(e.data)
		e.mu.Unlock()
		_, err := e.s.CreateParents(ctx, e.path, data, Ephemeral)
		if err == nil {
			return e.adopt(sid)
		}
		if !errors.Is(err, zk.ErrNodeExists) {
			if rerr := e.s.retryAfter(ctx, sid, err); rerr != nil {
				return rerr
			}
			continue // the create may have happened: the next try finds out
		}
		got, st, ch, err := e.s.GetW(ctx, e.path)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			if rerr := e.s.retryAfter(ctx, sid, err); rerr != nil {
				return rerr
			}
			continue
		}
		e.mu.Lock()
		ours := e.previous[st.EphemeralOwner] && bytes.Equal(got, e.data)
		e.mu.Unlock()
		switch {
		case st.EphemeralOwner == sid:
			return e.adopt(sid) // our create succeeded but its reply was lost
		case ours:
			err := e.s.Delete(ctx, e.path, st.Version)
			if err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
				if rerr := e.s.retryAfter(ctx, sid, err); rerr != nil {
					return rerr
				}
			}
		default:
			// Someone else's node (typically an old session's that the server has
			// not expired yet): wait for it to go, then create.
			if _, err := e.s.WaitEvent(ctx, sid, ch); err != nil {
				if ctx.Err() != nil || errors.Is(err, ErrSessionLost) {
					return err
				}
				if rerr := e.s.waitSession(ctx, sid); rerr != nil {
					return rerr
				}
			}
		}
	}
}

// adopt records that session sid owns the node now.
func (e *EphemeralNode) adopt(sid int64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.owner != 0 && e.owner != sid {
		e.previous[e.owner] = true
	}
	e.owner = sid
	e.lastErr = nil
	select {
	case <-e.created:
	default:
		close(e.created)
	}
	return nil
}

// watch waits until the node must be created again: it was deleted, or the
// session ended (ErrSessionLost).
func (e *EphemeralNode) watch(ctx context.Context, sid int64) error {
	for {
		ok, st, ch, err := e.s.ExistsW(ctx, e.path)
		if err != nil {
			if rerr := e.s.retryAfter(ctx, sid, err); rerr != nil {
				return e.lose(sid, rerr)
			}
			continue
		}
		if !ok || st.EphemeralOwner != sid {
			return nil // deleted (and maybe re-created by someone else): ensure decides
		}
		ev, err := e.s.WaitEvent(ctx, sid, ch)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrSessionLost) {
				return e.lose(sid, err)
			}
			if rerr := e.s.waitSession(ctx, sid); rerr != nil {
				return e.lose(sid, rerr)
			}
			continue
		}
		if ev.Type == zk.EventNodeDeleted {
			return nil
		}
	}
}

// lose notes that session sid (and with it our node) is gone when err says so.
func (e *EphemeralNode) lose(sid int64, err error) error {
	if errors.Is(err, ErrSessionLost) {
		e.mu.Lock()
		if e.owner == sid {
			e.previous[sid] = true
			e.owner = 0
		}
		e.mu.Unlock()
	}
	return err
}

// SetData changes the node's data: now if the node exists, and in every later re-creation.
func (e *EphemeralNode) SetData(ctx context.Context, data []byte) error {
	e.mu.Lock()
	e.data = bytes.Clone(data)
	owner := e.owner
	e.mu.Unlock()
	if owner == 0 || owner != e.s.ID() {
		return nil // the run loop creates it with the new data
	}
	_, err := e.s.Set(ctx, e.path, data, -1)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("zkrecipes: ephemeral node %s: set data: %w", e.path, err)
	}
	return nil
}

// Close stops keeping the node and deletes it if the current session owns it.
// It is idempotent.
func (e *EphemeralNode) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	cancel, done := e.cancel, e.done
	e.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("zkrecipes: ephemeral node %s: close: %w", e.path, ctx.Err())
	}
	e.mu.Lock()
	owner := e.owner
	e.owner = 0
	e.mu.Unlock()
	if owner == 0 || owner != e.s.ID() {
		return nil
	}
	ok, st, err := e.s.Exists(ctx, e.path)
	if err != nil {
		return fmt.Errorf("zkrecipes: ephemeral node %s: close: %w", e.path, err)
	}
	if !ok || st.EphemeralOwner != owner {
		return nil
	}
	if err := e.s.Delete(ctx, e.path, st.Version); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("zkrecipes: ephemeral node %s: close: %w", e.path, err)
	}
	return nil
}
