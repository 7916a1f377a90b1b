package zkrecipes

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"
	"time"
)

// LeaderLatch elects one leader among the participants that share a
// directory (Curator's LeaderLatch).
//
// Each participant keeps one protected ephemeral-sequential node
// dir/_c_<guid>-latch-<seq> whose data is its id. The lowest node's owner is
// the leader — but only if that node's Stat.EphemeralOwner is the
// participant's CURRENT session id: a node of an expired session never makes
// anyone leader. A non-leader watches only the node just before its own.
//
// Leadership ends when the session ends (expired, or presumed lost after a
// whole session timeout without a connection) or on Close; the latch then
// rejoins by itself with a new node as soon as a new session is up (at the
// back of the line). A leader does not watch its own node, so a deletion of
// it by a third party is noticed only at the next session loss; do not delete
// latch nodes by hand. A leader that must not act during a partition should
// also watch its Session's StateSuspended events or LastHeard.
type LeaderLatch struct {
	s   *Session
	dir string
	id  string

	mu         sync.Mutex    // guards the fields below
	node       ownedNode     // our current node ("" path while none)
	leading    bool          // leader now
	term       chan struct{} // closed when the current leadership ends
	gained     chan struct{} // closed when leadership is gained; replaced on loss
	joined     chan struct{} // closed once the first node exists
	cancel     context.CancelFunc
	done       chan struct{} // closed when the run loop exits
	started    bool
	closed     bool
	lastJoinEr error // the latest error of a join attempt (for Start's message)
}

// NewLeaderLatch returns a latch for participant id under dir. Start it to take part.
func NewLeaderLatch(s *Session, dir, id string) (*LeaderLatch, error) {
	if s == nil {
		return nil, fmt.Errorf("zkrecipes: leader latch %s: nil Session", dir)
	}
	if err := validDir(dir); err != nil {
		return nil, err
	}
	closed := make(chan struct{})
	close(closed)
	return &LeaderLatch{s: s, dir: dir, id: id, term: closed, gained: make(chan struct{}), joined: make(chan struct{})}, nil
}

// Start joins the election and returns once this participant's node exists.
// If ctx ends first, the latch is closed and ctx's error returned. A latch
// can be started once.
func (l *LeaderLatch) Start(ctx context.Context) error {
	l.mu.Lock()
	if l.started || l.closed {
		l.mu.Unlock()
		return fmt.Errorf("zkrecipes: leader latch %s: already started or closed", l.dir)
	}
	l.started = true
	runCtx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	joined := l.joined
	l.mu.Unlock()
	go l.run(runCtx)
	select {
	case <-joined:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		last := l.lastJoinEr
		l.mu.Unlock()
		cctx, c := context.WithTimeout(context.Background(), l.s.Timeout())
		defer c()
		_ = l.Close(cctx)
		if last != nil {
			return fmt.Errorf("zkrecipes: leader latch %s: start: %w (last error: %v)", l.dir, ctx.Err(), last)
		}
		return fmt.Errorf("zkrecipes: leader latch %s: start: %w", l.dir, ctx.Err())
	}
}

// run keeps a node in the election until ctx ends.
func (l *LeaderLatch) run(ctx context.Context) {
	defer close(l.done)
	delay := 50 * time.Millisecond
	for ctx.Err() == nil {
		if err := l.s.WaitConnected(ctx); err != nil {
			if errors.Is(err, ErrClosed) {
				return
			}
			continue
		}
		n, err := l.s.createOwned(ctx, l.dir, "latch-", []byte(l.id))
		if err != nil {
			l.setJoinErr(err)
			if ctx.Err() != nil || backoff(ctx, &delay, 2*time.Second) != nil {
				return
			}
			continue
		}
		delay = 50 * time.Millisecond
		l.mu.Lock()
		l.node = n
		select {
		case <-l.joined:
		default:
			close(l.joined)
		}
		l.mu.Unlock()
		err = l.contend(ctx, n)
		l.setLeader(false)
		l.mu.Lock()
		l.node = ownedNode{}
		l.mu.Unlock()
		if ctx.Err() != nil {
			// Close: give our place up now rather than at session end.
			rctx, cancel := context.WithTimeout(context.Background(), l.s.Timeout())
			_ = l.s.releaseNode(rctx, n)
			cancel()
			return
		}
		// Delete what is left of our node: after a presumed (client-side) session
		// loss the old node may linger on the server and would block the line.
		rctx, cancel := context.WithTimeout(ctx, l.s.Timeout())
		_ = l.s.releaseNode(rctx, n)
		cancel()
		if !errors.Is(err, ErrSessionLost) && backoff(ctx, &delay, 2*time.Second) != nil {
			return
		}
	}
}

func (l *LeaderLatch) setJoinErr(err error) {
	l.mu.Lock()
	l.lastJoinEr = err
	l.mu.Unlock()
}

// contend waits for our turn, leads until the session ends, and returns why it stopped.
func (l *LeaderLatch) contend(ctx context.Context, n ownedNode) error {
	for {
		if _, err := l.s.awaitTurn(ctx, l.dir, n, []string{"latch-"}, decidePredecessor, true); err != nil {
			return err
		}
		// Lowest: lead only if the node belongs to our current session.
		ok, st, err := l.s.Exists(ctx, n.path)
		if err != nil {
			if rerr := l.s.retryAfter(ctx, n.owner, err); rerr != nil {
				return rerr
			}
			continue
		}
		if !ok {
			return fmt.Errorf("%w: %s", errNodeGone, n.path)
		}
		if st.EphemeralOwner != l.s.ID() || st.EphemeralOwner != n.owner {
			return ErrSessionLost
		}
		exp := l.s.Expired(n.owner)
		l.setLeader(true)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exp:
			return ErrSessionLost
		}
	}
}

func (l *LeaderLatch) setLeader(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if on == l.leading {
		return
	}
	l.leading = on
	if on {
		l.term = make(chan struct{})
		close(l.gained)
		return
	}
	close(l.term)
	l.gained = make(chan struct{})
}

// IsLeader reports whether this participant leads now.
func (l *LeaderLatch) IsLeader() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leading
}

// Leadership returns a channel that is closed when the current leadership
// ends; if this participant does not lead now, the channel is already closed.
func (l *LeaderLatch) Leadership() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.term
}

// AwaitLeadership blocks until this participant leads, ctx ends, or the latch is closed.
func (l *LeaderLatch) AwaitLeadership(ctx context.Context) error {
	l.mu.Lock()
	gained, done, started := l.gained, l.done, l.started
	l.mu.Unlock()
	if !started {
		return fmt.Errorf("zkrecipes: leader latch %s: await leadership before Start", l.dir)
	}
	select {
	case <-gained:
		return nil
	case <-done:
		return fmt.Errorf("zkrecipes: leader latch %s: %w", l.dir, ErrClosed)
	case <-ctx.Done():
		return fmt.Errorf("zkrecipes: leader latch %s: await leadership: %w", l.dir, ctx.Err())
	}
}

// Path returns this participant's current node, or "" while it has none.
func (l *LeaderLatch) Path() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.node.path
}

// Participants returns the ids of all participants in line order: the first
// one leads (or is about to). Nodes that vanish while being read are skipped.
func (l *LeaderLatch) Participants(ctx context.Context) ([]string, error) {
	kids, _, err := l.s.Children(ctx, l.dir)
	if err != nil {
		return nil, fmt.Errorf("zkrecipes: leader latch %s: participants: %w", l.dir, err)
	}
	var ids []string
	for _, k := range participants(kids, "latch-") {
		data, _, err := l.s.Get(ctx, path.Join(l.dir, k))
		if errors.Is(err, ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("zkrecipes: leader latch %s: participants: %w", l.dir, err)
		}
		ids = append(ids, string(data))
	}
	return ids, nil
}

// Close leaves the election: leadership ends first, then the node is deleted
// (in the background if ctx ends first). Close is idempotent.
func (l *LeaderLatch) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	cancel, done := l.cancel, l.done
	l.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("zkrecipes: leader latch %s: close: %w", l.dir, ctx.Err())
	}
}
