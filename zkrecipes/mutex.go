package zkrecipes

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// Mutex is a distributed mutual-exclusion lock (Curator's InterProcessMutex,
// without re-entrancy).
//
// Each Lock creates a protected ephemeral-sequential node
// dir/_c_<guid>-lock-<seq>; the lowest node holds the lock. A waiter sets a
// data watch on the node just before its own and on nothing else, so a release
// wakes exactly one waiter (no herd, no child watch on dir). A create whose
// reply was lost is found again by its GUID, and a cancelled or failed Lock
// deletes its node, so no orphan is left to block the line.
//
// A node holds the lock only while the session that created it is the
// Session's current one: a node of an expired session never makes anyone the
// holder. If the session ends while Lock waits, Lock rejoins the line with a
// new node once a new session is up. If it ends while the lock is held, the
// lock is lost: Held() turns false at once and Lost() is closed; the next
// Lock or Unlock deletes the old node should the server still have it (after
// a session loss the client presumed before the server expired the session).
//
// While the connection is only suspended the session may still be alive, so
// the lock still counts as held; a holder that must not act during a network
// partition should also follow its Session's StateSuspended events or
// LastHeard (ZooKeeper can only fence a paused holder by deleting its node).
//
// A Mutex is one participant. It is not re-entrant: a second Lock on the
// same Mutex waits (like sync.Mutex) until Unlock, so a goroutine that calls
// Lock twice blocks until its ctx ends. Use one Mutex per concurrent user.
type Mutex struct {
	s      *Session
	dir    string
	kind   string   // node name part, e.g. "lock-"
	kinds  []string // node kinds that take part in the ordering
	decide decideFunc

	gate chan struct{} // one local user at a time: full while a Lock is in progress or held

	mu        sync.Mutex // guards hold and watchNode
	hold      *lockHold
	watchNode bool // Lost() was called: holds watch their own node too
}

// lockHold is one acquisition of a Mutex.
type lockHold struct {
	node     ownedNode
	lost     chan struct{} // closed when the hold ends for any reason
	lostOnce sync.Once
	cause    error           // why it was lost (set before lost is closed; nil after Unlock)
	arm      chan struct{}   // asks the monitor to watch the node (cap 1)
	ctx      context.Context // the monitor's operations; cancelled by Unlock
	cancel   context.CancelFunc
	done     chan struct{} // closed when the monitor exits
	watching bool          // the monitor runs (started by the first Lost call); guarded by Mutex.mu
}

func (h *lockHold) end(cause error) {
	h.lostOnce.Do(func() { h.cause = cause; close(h.lost) })
}

func (h *lockHold) ended() bool {
	select {
	case <-h.lost:
		return true
	default:
		return false
	}
}

// valid reports whether the hold still stands: not ended, and its node's
// session is still the current one (this needs no goroutine or watch).
func (h *lockHold) valid(s *Session) bool { return !h.ended() && s.ID() == h.node.owner }

// NewMutex returns a mutex whose participants live under dir (created on first use).
func NewMutex(s *Session, dir string) (*Mutex, error) {
	return newMutex(s, dir, "lock-", []string{"lock-"}, decidePredecessor)
}

func newMutex(s *Session, dir, kind string, kinds []string, decide decideFunc) (*Mutex, error) {
	if s == nil {
		return nil, fmt.Errorf("zkrecipes: mutex %s: nil Session", dir)
	}
	if err := validDir(dir); err != nil {
		return nil, err
	}
	return &Mutex{s: s, dir: dir, kind: kind, kinds: kinds, decide: decide, gate: make(chan struct{}, 1)}, nil
}

// Lock blocks until the lock is held or ctx ends. On a ctx error the waiting
// node is deleted. Errors wrap ctx's error, ErrClosed, or a ZooKeeper error.
func (m *Mutex) Lock(ctx context.Context) error {
	if err := m.enter(ctx, true); err != nil {
		return err
	}
	_, err := m.acquire(ctx, true)
	return err
}

// TryLock takes the lock only if no one holds it or waits for it, and
// reports whether it did. It still blocks while ZooKeeper is unreachable
// (bounded by ctx).
func (m *Mutex) TryLock(ctx context.Context) (bool, error) {
	if err := m.enter(ctx, false); err != nil {
		if errors.Is(err, errBusy) {
			return false, nil
		}
		return false, err
	}
	return m.acquire(ctx, false)
}

var errBusy = errors.New("zkrecipes: mutex busy locally")

// enter takes the local gate; a previous hold that was lost is cleaned up first.
func (m *Mutex) enter(ctx context.Context, wait bool) error {
	m.mu.Lock()
	if h := m.hold; h != nil && !h.valid(m.s) {
		m.mu.Unlock()
		m.finish(h)
		m.dropLostNode(ctx, h.node)
		m.mu.Lock()
	}
	m.mu.Unlock()
	if !wait {
		select {
		case m.gate <- struct{}{}:
			return nil
		default:
			return errBusy
		}
	}
	select {
	case m.gate <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("zkrecipes: lock %s: %w", m.dir, ctx.Err())
	}
}

// acquire runs with the gate taken; it releases it unless the lock is held.
func (m *Mutex) acquire(ctx context.Context, wait bool) (bool, error) {
	for {
		if err := m.s.WaitConnected(ctx); err != nil {
			<-m.gate
			return false, fmt.Errorf("zkrecipes: lock %s: %w", m.dir, err)
		}
		n, err := m.s.createOwned(ctx, m.dir, m.kind, nil)
		if err != nil {
			if errors.Is(err, ErrSessionLost) && ctx.Err() == nil {
				continue
			}
			<-m.gate
			return false, fmt.Errorf("zkrecipes: lock %s: %w", m.dir, err)
		}
		ok, err := m.s.awaitTurn(ctx, m.dir, n, m.kinds, m.decide, wait)
		if ok {
			m.startHold(n)
			return true, nil
		}
		// Not acquired: give our place up (a node of a lost session is already gone).
		relCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.s.Timeout())
		_ = m.s.releaseNode(relCtx, n)
		cancel()
		if err == nil { // TryLock lost to someone else
			<-m.gate
			return false, nil
		}
		if (errors.Is(err, ErrSessionLost) || errors.Is(err, errNodeGone)) && ctx.Err() == nil {
			continue // rejoin the line with a new node (and the new session)
		}
		<-m.gate
		return false, fmt.Errorf("zkrecipes: lock %s: %w", m.dir, err)
	}
}

// startHold records a new hold. Its monitor goroutine is started only once
// somebody asks for Lost(): a plain Lock/Unlock costs no goroutine and no watch.
func (m *Mutex) startHold(n ownedNode) {
	ctx, cancel := context.WithCancel(context.Background())
	h := &lockHold{node: n, lost: make(chan struct{}), arm: make(chan struct{}, 1),
		ctx: ctx, cancel: cancel, done: make(chan struct{})}
	m.mu.Lock()
	m.hold = h
	if m.watchNode {
		m.watchLocked(h)
	}
	m.mu.Unlock()
}

// watchLocked starts h's monitor (once) and asks it to watch h's node.
func (m *Mutex) watchLocked(h *lockHold) {
	if !h.watching {
		h.watching = true
		go m.monitor(h)
	}
	select {
	case h.arm <- struct{}{}:
	default:
	}
}

// monitor ends the hold when its session ends or (once armed by Lost) when
// its node is deleted.
func (m *Mutex) monitor(h *lockHold) {
	defer close(h.done)
	exp := m.s.Expired(h.node.owner)
	var nodeEvents <-chan zk.Event
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-exp:
			h.end(ErrSessionLost)
			return
		case <-h.arm:
			ok, _, ch, err := m.s.ExistsW(h.ctx, h.node.path)
			switch {
			case err == nil && !ok:
				h.end(fmt.Errorf("%w: %s", errNodeGone, h.node.path))
				return
			case err == nil:
				nodeEvents = ch
			default:
				// Session trouble: exp decides; re-arm if the connection comes back.
				go func() {
					if m.s.waitSession(h.ctx, h.node.owner) == nil {
						select {
						case h.arm <- struct{}{}:
						default:
						}
					}
				}()
			}
		case ev := <-nodeEvents:
			nodeEvents = nil
			if ev.Type == zk.EventNodeDeleted {
				h.end(fmt.Errorf("%w: %s", errNodeGone, h.node.path))
				return
			}
			select {
			case h.arm <- struct{}{}:
			default:
			}
		}
	}
}

// finish stops the monitor of h and gives the gate back (once).
func (m *Mutex) finish(h *lockHold) {
	m.mu.Lock()
	if m.hold != h {
		m.mu.Unlock()
		return
	}
	m.hold = nil
	watching := h.watching
	m.mu.Unlock()
	h.end(nil)
	h.cancel()
	if watching {
		<-h.done
	}
	<-m.gate
}

// dropLostNode deletes the node of a lost hold if it is still there. After a
// presumed session loss (the client gave the session up; the server may not
// have expired it yet) the node would otherwise keep the whole line waiting
// until the server expires that session. Deleting it is safe: this Mutex has
// already reported the hold as lost and never counts the node again.
//
// The node belongs to a session that is no longer ours, so a failed delete
// is retried on the current session through connection loss until the node
// is gone or ctx ends (releaseNode would give up at once: it assumes a node
// of an ended session is gone with it, which a presumed loss does not
// guarantee).
func (m *Mutex) dropLostNode(ctx context.Context, n ownedNode) {
	delay := 20 * time.Millisecond
	for {
		err := m.s.Delete(ctx, n.path, -1)
		if err == nil || errors.Is(err, zk.ErrNoNode) || !IsRetriable(err) || ctx.Err() != nil {
			return
		}
		if backoff(ctx, &delay, time.Second) != nil || m.s.WaitConnected(ctx) != nil {
			return
		}
	}
}

// Unlock releases the lock and deletes its node (in the background if ctx
// ends first). It returns ErrNotHeld if the Mutex was not locked, and an error
// wrapping ErrSessionLost if the lock had been lost before Unlock; the Mutex
// can be locked again in every case.
func (m *Mutex) Unlock(ctx context.Context) error {
	m.mu.Lock()
	h := m.hold
	m.mu.Unlock()
	if h == nil {
		return fmt.Errorf("zkrecipes: unlock %s: %w", m.dir, ErrNotHeld)
	}
	var cause error
	if h.ended() {
		cause = h.cause
	} else if m.s.ID() != h.node.owner {
		cause = ErrSessionLost
	}
	m.finish(h)
	if cause != nil {
		m.dropLostNode(ctx, h.node)
		return fmt.Errorf("zkrecipes: unlock %s: lock was lost before: %w", m.dir, cause)
	}
	if err := m.s.releaseNode(ctx, h.node); err != nil {
		return fmt.Errorf("zkrecipes: unlock %s: %w", m.dir, err)
	}
	return nil
}

// Held reports whether this Mutex holds the lock now (locked, not unlocked,
// not lost).
func (m *Mutex) Held() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hold != nil && m.hold.valid(m.s)
}

// Lost returns a channel that is closed when the current hold ends: the
// session that held the lock ended, the lock node was deleted, or Unlock was
// called. Without a hold it returns a closed channel.
//
// The first call makes every hold of this Mutex also watch its own node (one
// extra data watch per hold, on the holder's node), so that a deletion by
// someone else is noticed; session loss is noticed without any watch.
func (m *Mutex) Lost() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.watchNode = true
	if m.hold != nil && !m.hold.watching {
		m.watchLocked(m.hold)
	}
	if m.hold == nil {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return m.hold.lost
}

// Path returns the lock node of the current hold, or "" if not held.
func (m *Mutex) Path() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hold == nil || !m.hold.valid(m.s) {
		return ""
	}
	return m.hold.node.path
}
