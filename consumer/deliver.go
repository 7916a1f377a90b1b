package consumer

import (
	"time"
)

// deliverLoop runs the handler over the partition's batches, one message at
// a time, in order, holding one of the consumer's handler slots per batch.
func (ps *partState) deliverLoop(h Handler) {
	defer ps.wg.Done()
	c := ps.c
	for {
		var b *batch
		select {
		case b = <-ps.batches:
		case <-ps.ctx.Done():
			return
		}
		select {
		case c.sem <- struct{}{}:
		case <-ps.ctx.Done():
			return
		}
		ok := ps.deliverBatch(h, b)
		<-c.sem
		if !ok {
			return
		}
	}
}

func (ps *partState) deliverBatch(h Handler, b *batch) bool {
	c := ps.c
	for i := range b.msgs {
		if ps.ctx.Err() != nil || !c.waitDeliverable(ps, ps.ctx.Done(), nil) {
			return false
		}
		if ps.stopped.Load() {
			return false
		}
		m := &b.msgs[i]
		if !ps.handle(h, m) {
			return false
		}
		ps.markProcessed(m.NextOffset, m.ID)
	}
	return true
}

// handle runs the filter, the handler with its retries and the dead-letter
// hook for one message; false when the partition stopped before the message
// was done with (it is then not processed).
func (ps *partState) handle(h Handler, m *Message) bool {
	c := ps.c
	if c.opts.filter != nil && !c.opts.filter(m) {
		c.stats.filtered.Add(1)
		return true
	}
	c.stats.delivered.Add(1)
	wait := c.opts.retryBackoff
	for attempt := 1; ; attempt++ {
		err := h(ps.hctx, m)
		if err == nil {
			return true
		}
		if ps.hctx.Err() != nil {
			return false
		}
		if c.opts.retryAttempts > 0 && attempt >= c.opts.retryAttempts {
			return ps.giveUp(m, err, attempt)
		}
		c.stats.retries.Add(1)
		c.log.Warn("consumer: handler failed; retrying", "partition", ps.tp, "offset", m.Offset, "attempt", attempt, "err", err)
		// A retry is a delivery like the first: fenced again after the wait
		// (the process may have been stopped in it, the partition lost).
		if !ps.sleep(wait) || !c.waitDeliverable(ps, ps.ctx.Done(), nil) {
			return false
		}
		wait = min(max(2*wait, time.Millisecond), maxRetryGap)
	}
}

// giveUp passes a message that failed every attempt to the dead-letter hook
// (retried until it succeeds) or, without one, drops it with a log line.
func (ps *partState) giveUp(m *Message, herr error, attempts int) bool {
	c := ps.c
	if c.opts.deadLetter == nil {
		c.stats.dropped.Add(1)
		c.log.Error("consumer: handler failed every attempt; message skipped (no dead-letter hook)",
			"partition", ps.tp, "offset", m.Offset, "id", m.ID, "attempts", attempts, "err", herr)
		return true
	}
	bo := backoff{min: max(c.opts.retryBackoff, time.Millisecond), max: maxRetryGap}
	for {
		if !c.waitDeliverable(ps, ps.ctx.Done(), nil) { // only the owner may decide the message's fate
			return false
		}
		err := c.opts.deadLetter(ps.hctx, m, herr)
		if err == nil {
			c.stats.deadLettered.Add(1)
			return true
		}
		c.log.Error("consumer: dead-letter hook failed; retrying", "partition", ps.tp, "offset", m.Offset, "err", err)
		if !ps.sleep(bo.next()) {
			return false
		}
	}
}
