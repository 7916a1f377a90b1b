package zkrecipes

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/go-zookeeper/zk"
)

// ErrQueueEmpty is returned by Queue.Peek when the queue holds no item.
var ErrQueueEmpty = errors.New("zkrecipes: queue is empty")

// queueItemPrefix starts every item name: "qn-<32 hex GUID>-<10-digit sequence>".
const queueItemPrefix = "qn-"

// Queue is a distributed FIFO queue (the ZooKeeper recipe; Curator's
// SimpleDistributedQueue): each item is a persistent sequential child of the
// queue's node, and a taker claims an item by deleting it, so exactly one
// taker gets each item. Items come out in sequence order, except that
// concurrent takers may finish out of order.
//
// Cost: Put is one create. Take lists the children once and then walks that
// list (get + delete per item) until a delete succeeds, so takers that race
// for the same head move on without re-listing. While the queue is empty,
// every waiting taker holds a child watch on the queue node, and each Put
// wakes all of them (a herd of W notifications and W re-lists for W idle
// takers, as in Curator); only one wins the item, the others go back to
// waiting. Keep the number of idle takers per queue small, or put a lock in
// front of Take if there are many.
//
// Item names carry a GUID, so a Put whose reply was lost finds its item after
// reconnecting instead of enqueuing it twice.
type Queue struct {
	s    *Session
	path string
}

// NewQueue returns a queue rooted at p (created on first Put).
func NewQueue(s *Session, p string) (*Queue, error) {
	if err := validatePath(p); err != nil {
		return nil, err
	}
	return &Queue{s: s, path: p}, nil
}

// Put appends an item and returns its node path. If the connection drops
// while the create is in flight, Put looks for its item after reconnecting
// and creates it only if it is not there. If ctx ends while the outcome is
// unknown, Put returns ctx's error and removes the item in the background if
// it was created and not yet taken.
func (q *Queue) Put(ctx context.Context, data []byte) (string, error) {
	guid := newGUID()
	name := path.Join(q.path, queueItemPrefix+guid+"-")
	var bo retryDelay
	ambiguous := false
	for {
		created, err := q.s.CreateParents(ctx, name, data, PersistentSequential)
		if err == nil {
			return created, nil
		}
		if ctx.Err() != nil || !isTransientErr(err) {
			if ambiguous || ctx.Err() != nil {
				q.cleanupItem(guid) // the create may still have happened
			}
			return "", fmt.Errorf("zkrecipes: queue %s: put: %w", q.path, err)
		}
		ambiguous = true
		if werr := q.s.WaitConnected(ctx); werr != nil {
			q.cleanupItem(guid)
			return "", fmt.Errorf("zkrecipes: queue %s: put: %w", q.path, werr)
		}
		if found, ferr := q.find(ctx, guid); ferr == nil && found != "" {
			return found, nil
		}
		if werr := bo.wait(ctx); werr != nil {
			q.cleanupItem(guid)
			return "", fmt.Errorf("zkrecipes: queue %s: put: %w", q.path, werr)
		}
	}
}

func (q *Queue) find(ctx context.Context, guid string) (string, error) {
	kids, _, err := q.s.Children(ctx, q.path)
	if err != nil {
		return "", err
	}
	for _, k := range kids {
		if strings.HasPrefix(k, queueItemPrefix+guid+"-") {
			return path.Join(q.path, k), nil
		}
	}
	return "", nil
}

// cleanupItem deletes, in the background and for a bounded time, an item a
// failed Put may have created.
func (q *Queue) cleanupItem(guid string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*q.s.Timeout())
		defer cancel()
		_ = retryTransient(ctx, q.s, func() error {
			found, err := q.find(ctx, guid)
			if err != nil || found == "" {
				if errors.Is(err, zk.ErrNoNode) {
					return nil
				}
				return err
			}
			return q.s.DeleteIfExists(ctx, found)
		})
	}()
}

// items lists the item names in sequence order; a missing queue node is empty.
func (q *Queue) items(ctx context.Context, watch bool) ([]string, <-chan zk.Event, error) {
	var kids []string
	var ch <-chan zk.Event
	var err error
	if watch {
		kids, _, ch, err = q.s.ChildrenW(ctx, q.path)
	} else {
		kids, _, err = q.s.Children(ctx, q.path)
	}
	if errors.Is(err, zk.ErrNoNode) {
		if !watch {
			return nil, nil, nil
		}
		var ok bool
		ok, _, ch, err = q.s.ExistsW(ctx, q.path) // wake up when the queue is created
		if err == nil && ok {
			return q.items(ctx, watch)
		}
		return nil, ch, err
	}
	if err != nil {
		return nil, nil, err
	}
	out := kids[:0]
	for _, k := range kids {
		if strings.HasPrefix(k, queueItemPrefix) {
			out = append(out, k)
		}
	}
	return SortBySequence(out), ch, nil
}

// Take removes the head item and returns its data, blocking until an item is
// available or ctx ends. Each item is returned by exactly one Take across all
// takers.
//
// If the connection drops while the claiming delete is in flight, Take cannot
// know whether its delete won: it then assumes another taker got the item and
// moves on (at most once, as in Curator). That window is one round trip.
func (q *Queue) Take(ctx context.Context) ([]byte, error) {
	var bo retryDelay
	for {
		data, err := q.takeOnce(ctx)
		if err == nil {
			return data, nil
		}
		if errors.Is(err, errStepAgain) {
			bo.reset()
			continue
		}
		if ctx.Err() != nil || !isTransientErr(err) {
			return nil, fmt.Errorf("zkrecipes: queue %s: take: %w", q.path, err)
		}
		if werr := bo.wait(ctx); werr != nil {
			return nil, fmt.Errorf("zkrecipes: queue %s: take: %w", q.path, werr)
		}
	}
}

// takeOnce lists the queue once and tries to claim its items in order; if it
// finds none it waits for the next children change and returns errStepAgain.
func (q *Queue) takeOnce(ctx context.Context) ([]byte, error) {
	id, err := connectedSessionID(ctx, q.s)
	if err != nil {
		return nil, err
	}
	kids, _, err := q.items(ctx, false)
	if err != nil {
		return nil, err
	}
	for _, k := range kids {
		data, ok, err := q.claim(ctx, path.Join(q.path, k))
		if err != nil {
			return nil, err
		}
		if ok {
			return data, nil
		}
	}
	// Empty (or everything listed was taken by others): watch and re-list.
	kids, ch, err := q.items(ctx, true)
	if err != nil {
		return nil, err
	}
	if len(kids) > 0 {
		return nil, errStepAgain
	}
	if err := awaitWatch(ctx, q.s, id, ch); err != nil {
		return nil, err
	}
	return nil, errStepAgain
}

// claim reads an item and deletes it; ok is false if another taker got it
// first. Once started it ignores ctx's cancellation (but not for longer than
// a session timeout), so that a cancelled Take never deletes an item without
// returning it.
func (q *Queue) claim(ctx context.Context, p string) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.s.Timeout())
	defer cancel()
	data, st, err := q.s.Get(ctx, p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	err = q.s.Delete(ctx, p, st.Version)
	switch {
	case err == nil:
		return data, true, nil
	case errors.Is(err, zk.ErrNoNode):
		return nil, false, nil
	case isTransientErr(err):
		return nil, false, nil // outcome unknown: treat as taken by someone else
	}
	return nil, false, err
}

// Peek returns the head item's data without removing it, or ErrQueueEmpty.
func (q *Queue) Peek(ctx context.Context) ([]byte, error) {
	var out []byte
	err := retryTransient(ctx, q.s, func() error {
		kids, _, err := q.items(ctx, false)
		if err != nil {
			return err
		}
		for _, k := range kids {
			data, _, err := q.s.Get(ctx, path.Join(q.path, k))
			if errors.Is(err, zk.ErrNoNode) {
				continue
			}
			if err != nil {
				return err
			}
			out = data
			return nil
		}
		return ErrQueueEmpty
	})
	if err != nil {
		return nil, fmt.Errorf("zkrecipes: queue %s: peek: %w", q.path, err)
	}
	return out, nil
}

// Len returns the number of items in the queue.
func (q *Queue) Len(ctx context.Context) (int, error) {
	var n int
	err := retryTransient(ctx, q.s, func() error {
		ok, st, err := q.s.Exists(ctx, q.path)
		if err != nil {
			return err
		}
		n = 0
		if ok {
			n = int(st.NumChildren)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("zkrecipes: queue %s: len: %w", q.path, err)
	}
	return n, nil
}
