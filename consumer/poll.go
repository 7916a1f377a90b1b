package consumer

import (
	"context"
	"sync"
	"time"
)

// pollState is the poll style's read position. Guarded by Consumer.pollMu
// (held for a whole Poll, so callers are served one at a time, in order).
type pollState struct {
	cur *batch
	idx int
}

// polled tracks messages handed out by Poll but not yet known processed:
// the last one of each partition of the previous Poll call.
type polled struct {
	mu      sync.Mutex // guards last, changed
	last    []*Message
	changed chan struct{} // closed and replaced whenever last is cleared
}

func (c *Consumer) pollCheck() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !c.started:
		return ErrNotStarted
	case !c.pollStyle.Load():
		return ErrHandlerStyle
	}
	return nil
}

// next returns the next deliverable message, waiting for one.
func (c *Consumer) next(ctx context.Context, wait bool) (*Message, error) {
	st := &c.poll
	for {
		if !wait && c.gate.isSuspended() {
			return nil, nil
		}
		if !c.gate.wait(ctx.Done(), c.stop) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, ErrClosed
		}
		for st.cur != nil && st.idx < len(st.cur.msgs) {
			if st.cur.ps.stopped.Load() { // revoked or lost: drop the rest
				break
			}
			if ps := st.cur.ps; !c.deliverable(ps) {
				if ps.gone() { // revoked or lost (also by a session that ended): drop the rest
					break
				}
				if !wait {
					return nil, nil
				}
				if !c.waitDeliverable(ps, ctx.Done(), c.stop) {
					if ctx.Err() != nil {
						return nil, ctx.Err()
					}
					if ps.gone() {
						break
					}
					return nil, ErrClosed
				}
				continue // the partition may have been revoked or lost meanwhile
			}
			m := &st.cur.msgs[st.idx]
			st.idx++
			if c.opts.filter != nil && !c.opts.filter(m) {
				c.stats.filtered.Add(1)
				m.ps.markProcessed(m.NextOffset, m.ID)
				continue
			}
			c.stats.delivered.Add(1)
			return m, nil
		}
		st.cur, st.idx = nil, 0
		if !wait {
			return nil, nil
		}
		select {
		case b := <-c.pollCh:
			st.cur = b
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.stop:
			return nil, ErrClosed
		}
	}
}

func (c *Consumer) pollMessages(ctx context.Context, limit int) ([]*Message, error) {
	c.markPolled()
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	m, err := c.next(ctx, true)
	if err != nil {
		return nil, err
	}
	// Size out for what is at hand (append grows it when more batches are
	// ready): at low rates a Poll returns a few messages, and a slice sized
	// for limit would be most of the consumer's garbage.
	room := 1
	if st := &c.poll; st.cur != nil {
		room += len(st.cur.msgs) - st.idx
	}
	out := make([]*Message, 1, min(limit, max(room, 16)))
	out[0] = m
fill:
	for len(out) < limit {
		m, _ := c.next(ctx, false)
		if m == nil {
			select {
			case b := <-c.pollCh:
				c.poll.cur, c.poll.idx = b, 0
				continue
			default:
				break fill
			}
		}
		out = append(out, m)
	}
	c.remember(out...)
	return out, nil
}

// pollOne returns one message for the iterator.
func (c *Consumer) pollOne(ctx context.Context) (*Message, error) {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	m, err := c.next(ctx, true)
	if m != nil {
		c.remember(m)
	}
	return m, err
}

// remember records the last message of each partition in out as handed out.
func (c *Consumer) remember(out ...*Message) {
	p := &c.polledMsgs
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(out) - 1; i >= 0; i-- {
		m := out[i]
		seen := false
		for _, l := range p.last {
			if l.ps == m.ps {
				seen = true
				break
			}
		}
		if !seen {
			p.last = append(p.last, m)
		}
	}
}

// markPolled marks the messages handed out by the previous Poll as processed.
func (c *Consumer) markPolled() {
	p := &c.polledMsgs
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.last) == 0 {
		return
	}
	for i, m := range p.last {
		m.ps.markProcessed(m.NextOffset, m.ID)
		p.last[i] = nil
	}
	p.last = p.last[:0]
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
}

// revokeWait bounds how long a revocation waits for the poller to come back
// for more (which says it processed what it had) before it commits.
const revokeWait = 10 * time.Second

// waitPolled waits (at most revokeWait, or until ctx ends or Close) until no
// message of parts handed out by Poll is outstanding, so that a partition
// is not processed here while its next owner starts.
func (c *Consumer) waitPolled(ctx context.Context, parts []*partState) {
	t := time.NewTimer(revokeWait)
	defer t.Stop()
	p := &c.polledMsgs
	for {
		p.mu.Lock()
		outstanding := false
		for _, m := range p.last {
			for _, ps := range parts {
				if m.ps == ps {
					outstanding = true
				}
			}
		}
		if !outstanding {
			p.mu.Unlock()
			return
		}
		if p.changed == nil {
			p.changed = make(chan struct{})
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		case <-c.stop:
			return
		}
	}
}
