package zkrecipes

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/go-zookeeper/zk"
)

// Barrier holds processes until it is removed (Curator's DistributedBarrier):
// while its node exists, Wait blocks. One persistent node, watched with an
// exists watch by each waiter; all waiters must wake when it goes, so the one
// notification per waiter is the minimum.
type Barrier struct {
	s    *Session
	path string
}

// NewBarrier returns a barrier on the node at p. Nothing is created until Set.
func NewBarrier(s *Session, p string) (*Barrier, error) {
	if err := validatePath(p); err != nil {
		return nil, err
	}
	return &Barrier{s: s, path: p}, nil
}

// Set raises the barrier (creates its node, and missing parents). Setting a
// raised barrier is not an error.
func (b *Barrier) Set(ctx context.Context) error {
	return retryTransient(ctx, b.s, func() error {
		_, err := b.s.CreateParents(ctx, b.path, nil, Persistent)
		if errors.Is(err, zk.ErrNodeExists) {
			return nil
		}
		return err
	})
}

// Remove lowers the barrier (deletes its node), releasing every waiter.
// Removing a lowered barrier is not an error.
func (b *Barrier) Remove(ctx context.Context) error {
	return retryTransient(ctx, b.s, func() error { return b.s.DeleteIfExists(ctx, b.path) })
}

// Wait blocks until the barrier is not set (its node does not exist) or ctx
// ends. It survives reconnects and session loss: it re-reads and re-arms its
// watch each time.
func (b *Barrier) Wait(ctx context.Context) error {
	var bo retryDelay
	for {
		id, err := connectedSessionID(ctx, b.s)
		if err != nil {
			return err
		}
		ok, _, ch, err := b.s.ExistsW(ctx, b.path)
		if err == nil && !ok {
			return nil
		}
		if err == nil {
			err = awaitWatch(ctx, b.s, id, ch)
		}
		if err == nil {
			bo.reset()
			continue
		}
		if ctx.Err() != nil {
			return fmt.Errorf("zkrecipes: barrier %s: wait: %w", b.path, ctx.Err())
		}
		if !isTransientErr(err) {
			return err
		}
		if werr := bo.wait(ctx); werr != nil {
			return werr
		}
	}
}

// DoubleBarrier lets N processes start a computation together and finish it
// together (Curator's DistributedDoubleBarrier, the ZooKeeper recipes
// "double barrier"). Under its path each participant has an ephemeral
// sequential node (protected create), and a persistent "ready" node marks
// that N have entered.
//
// Enter: each participant sets an exists watch on "ready", creates its node,
// and if it sees N participants creates "ready"; everybody wakes once when
// "ready" appears. Leave avoids the herd: the lowest participant watches only
// the highest; every other participant deletes its node and watches only the
// lowest; the lowest deletes its node (with "ready", atomically) last, so a
// departure wakes one process and the end of the barrier wakes each waiter once.
//
// A DoubleBarrier value is for one participant and one round at a time;
// reuse the path for another round only after every participant has left.
type DoubleBarrier struct {
	s       *Session
	path    string
	members int

	node      string // our node's full path while entered
	sessionID int64  // the session that owns node
}

// doubleBarrierReady is the name of the node that marks the barrier full.
const doubleBarrierReady = "ready"

// NewDoubleBarrier returns a double barrier for members participants at p.
func NewDoubleBarrier(s *Session, p string, members int) (*DoubleBarrier, error) {
	if err := validatePath(p); err != nil {
		return nil, err
	}
	if members < 1 {
		return nil, fmt.Errorf("zkrecipes: double barrier %s: members must be at least 1, got %d", p, members)
	}
	return &DoubleBarrier{s: s, path: p, members: members}, nil
}

func (d *DoubleBarrier) readyPath() string { return path.Join(d.path, doubleBarrierReady) }

// Enter joins the barrier and blocks until members participants have
// entered. If ctx ends or the session is lost first, it withdraws (deletes
// its node) and returns the error (ctx's, or ErrSessionLost).
func (d *DoubleBarrier) Enter(ctx context.Context) error {
	if d.node != "" {
		return fmt.Errorf("zkrecipes: double barrier %s: already entered", d.path)
	}
	err := d.enter(ctx)
	if err != nil && d.node != "" {
		d.withdraw()
	}
	if err != nil {
		return fmt.Errorf("zkrecipes: double barrier %s: enter: %w", d.path, err)
	}
	return nil
}

func (d *DoubleBarrier) enter(ctx context.Context) error {
	id, err := connectedSessionID(ctx, d.s)
	if err != nil {
		return err
	}
	var ready bool
	var readyCh <-chan zk.Event
	if err := retryTransient(ctx, d.s, func() (e error) {
		ready, _, readyCh, e = d.s.ExistsW(ctx, d.readyPath())
		return e
	}); err != nil {
		return err
	}
	node, err := d.s.CreateProtected(ctx, d.path, "p-", nil, true)
	if err != nil {
		return err
	}
	d.node, d.sessionID = node, id
	if d.s.ID() != id {
		return ErrSessionLost
	}
	for !ready {
		n, err := d.count(ctx)
		if err != nil {
			return err
		}
		if n >= d.members {
			_, err := d.s.Create(ctx, d.readyPath(), nil, Persistent)
			if err == nil || errors.Is(err, zk.ErrNodeExists) {
				return nil
			}
			if !isTransientErr(err) {
				return err
			}
		} else if err := awaitWatch(ctx, d.s, id, readyCh); err != nil && !IsRetriable(err) {
			return err
		}
		select {
		case <-d.s.Expired(id):
			return ErrSessionLost
		default:
		}
		if err := retryTransient(ctx, d.s, func() (e error) {
			ready, _, readyCh, e = d.s.ExistsW(ctx, d.readyPath())
			return e
		}); err != nil {
			return err
		}
	}
	return nil
}

// count returns how many participant nodes exist.
func (d *DoubleBarrier) count(ctx context.Context) (int, error) {
	var kids []string
	err := retryTransient(ctx, d.s, func() (e error) { kids, e = d.participants(ctx); return e })
	return len(kids), err
}

// participants lists participant node names sorted by sequence.
func (d *DoubleBarrier) participants(ctx context.Context) ([]string, error) {
	kids, _, err := d.s.Children(ctx, d.path)
	if err != nil {
		return nil, err
	}
	out := kids[:0]
	for _, k := range kids {
		if strings.HasPrefix(k, ProtectedPrefix) {
			out = append(out, k)
		}
	}
	return SortBySequence(out), nil
}

// withdraw deletes our node after a failed Enter (in the background if the
// connection is down; the node goes with the session anyway).
func (d *DoubleBarrier) withdraw() {
	node, id := d.node, d.sessionID
	d.node, d.sessionID = "", 0
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*d.s.Timeout())
		defer cancel()
		_ = retryTransient(ctx, d.s, func() error {
			if d.s.ID() != id {
				return nil // the node went with its session
			}
			return d.s.DeleteIfExists(ctx, node)
		})
	}()
}

// Leave leaves the barrier and blocks until every participant has left, or
// ctx ends. If the session is lost meanwhile its node is gone, which counts as
// having left: Leave still waits for the others.
func (d *DoubleBarrier) Leave(ctx context.Context) error {
	if d.node == "" {
		return fmt.Errorf("zkrecipes: double barrier %s: leave: %w", d.path, ErrNotHeld)
	}
	ourName := path.Base(d.node)
	var bo retryDelay
	for {
		err := d.leaveStep(ctx, ourName)
		if err == nil {
			d.node, d.sessionID = "", 0
			return nil
		}
		if errors.Is(err, errStepAgain) {
			bo.reset()
			continue
		}
		if ctx.Err() != nil || !isTransientErr(err) {
			return fmt.Errorf("zkrecipes: double barrier %s: leave: %w", d.path, err)
		}
		if werr := bo.wait(ctx); werr != nil {
			return fmt.Errorf("zkrecipes: double barrier %s: leave: %w", d.path, werr)
		}
	}
}

// errStepAgain tells a loop to run its step again at once.
var errStepAgain = errors.New("zkrecipes: again")

// leaveStep runs one round of the ZooKeeper recipe's leave algorithm. It
// returns nil when everyone has left, errStepAgain after a watch fired.
func (d *DoubleBarrier) leaveStep(ctx context.Context, ourName string) error {
	id, err := connectedSessionID(ctx, d.s)
	if err != nil {
		return err
	}
	kids, err := d.participants(ctx)
	if err != nil {
		return err
	}
	ours := id == d.sessionID // our node can exist only under its own session
	idx := -1
	for i, k := range kids {
		if k == ourName {
			idx = i
		}
	}
	switch {
	case len(kids) == 0:
		if !ours {
			// Our node went with a lost session and we may have been the lowest.
			return d.s.DeleteIfExists(ctx, d.readyPath())
		}
		return nil
	case len(kids) == 1 && idx == 0:
		_, err := d.s.Multi(ctx, &zk.DeleteRequest{Path: d.node, Version: -1},
			&zk.DeleteRequest{Path: d.readyPath(), Version: -1})
		if errors.Is(err, zk.ErrNoNode) {
			err = d.s.DeleteIfExists(ctx, d.node)
		}
		return err
	}
	watch := kids[0] // everyone but the lowest waits for the lowest
	if idx == 0 {
		watch = kids[len(kids)-1] // the lowest waits for the highest
	} else if idx > 0 {
		if err := d.s.DeleteIfExists(ctx, d.node); err != nil {
			return err
		}
	}
	ok, _, ch, err := d.s.ExistsW(ctx, path.Join(d.path, watch))
	if err != nil {
		return err
	}
	if ok {
		if err := awaitWatch(ctx, d.s, id, ch); err != nil {
			return err
		}
	}
	return errStepAgain
}
