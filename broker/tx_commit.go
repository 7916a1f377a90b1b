package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/broker/txlog"
)

// partBatch is the part of a transaction that goes to one partition.
type partBatch struct {
	topic string
	part  int32
	p     *store.Partition
	msgs  []store.Message
}

// queueFullPatience bounds how long a commit retries a partition whose
// append queue is full.
const queueFullPatience = 30 * time.Second

// batches groups a transaction's messages by partition, in put order.
func (m *txManager) batches(msgs []txlog.Message) ([]*partBatch, error) {
	var out []*partBatch
	for _, msg := range msgs {
		var pb *partBatch
		for _, c := range out {
			if c.topic == msg.Topic && c.part == msg.Partition {
				pb = c
				break
			}
		}
		if pb == nil {
			p, err := m.b.store.Partition(msg.Topic, int(msg.Partition), true)
			if err != nil {
				return nil, fmt.Errorf("open partition %s-%d: %w", msg.Topic, msg.Partition, err)
			}
			pb = &partBatch{topic: msg.Topic, part: msg.Partition, p: p}
			out = append(out, pb)
		}
		pb.msgs = append(pb.msgs, store.Message{Data: msg.Data, Flag: msg.Flag, ID: msg.ID})
	}
	return out, nil
}

// runCommit carries out a decided commit. The caller set t.phase to
// txCommitting and t.running. A first attempt journals the COMMIT record
// (fsynced) and appends each partition's batch; a retry (t.parts set: after
// an I/O error, or on recovery) appends only what each partition is missing.
// The DONE record follows once every partition append is durable.
func (m *txManager) runCommit(t *tx) error {
	m.mu.Lock()
	parts, inline, heur, msgs, owner := t.parts, !t.journaled, t.heuristic, t.msgs, t.principal
	m.mu.Unlock()
	groups, err := m.batches(msgs)
	if err == nil && parts == nil {
		parts = make([]txlog.PartStart, len(groups))
		for i, g := range groups {
			parts[i] = txlog.PartStart{Topic: g.topic, Partition: g.part, Offset: g.p.End()}
		}
		rec := txlog.Record{Kind: txlog.KindCommit, Key: t.key, Heuristic: heur, Inline: inline, Parts: parts, Owner: owner}
		if inline {
			rec.Msgs = msgs
		}
		if err = m.j.AppendWait(rec, true); err != nil {
			// Not decided as far as the client knows (XAER_RMFAIL: outcome
			// unknown); the record may still be on disk and commit at restart.
			m.mu.Lock()
			t.running, t.phase, t.heuristic = false, txActive, false
			if t.journaled {
				t.phase = txPrepared
			}
			m.mu.Unlock()
			return err
		}
		m.mu.Lock()
		t.parts = parts
		m.mu.Unlock()
		if err = m.replicateCommit(t.key, inline, heur, parts); err == nil {
			err = m.appendAll(groups)
		}
	} else if err == nil {
		if err = m.replicateCommit(t.key, inline, heur, parts); err == nil {
			err = m.ensureAll(groups, parts)
		}
	}
	if err != nil {
		m.mu.Lock()
		t.running = false
		m.mu.Unlock()
		return err
	}
	m.j.Append(txlog.Record{Kind: txlog.KindDone, Key: t.key, Heuristic: heur}, false, nil)
	if !inline {
		if err := m.b.replicateTx(txlog.Record{Kind: txlog.KindDone, Key: t.key, Heuristic: heur}, false); err != nil {
			m.b.log.Warn("replication: DONE not written to the transaction stream; a new master completes the commit again (appending nothing twice)", "tx", t.key, "err", err)
		}
	}
	m.mu.Lock()
	t.running = false
	if heur {
		t.phase = txHeurCommitted
		m.release(t)
		m.b.stats.c.txCommit.Add(1)
	} else {
		m.finish(t, outCommitted)
	}
	m.mu.Unlock()
	return nil
}

// replicateCommit writes the COMMIT of a prepared transaction to the
// transaction stream and waits until the in-sync followers have it, before
// any partition append: a new master that knows the transaction as
// prepared never commits it a second time after the old master's appends
// reached it. A one-phase commit of an unprepared (local) transaction is
// not in the stream: its appends go through the sync gate like puts.
func (m *txManager) replicateCommit(key string, inline, heur bool, parts []txlog.PartStart) error {
	if inline {
		return nil
	}
	return m.b.replicateTx(txlog.Record{Kind: txlog.KindCommit, Key: key, Heuristic: heur, Parts: parts}, true)
}

// appendAll appends every partition's batch concurrently and waits until
// all are durable, and on a master with in-sync followers until they have
// them too (the sync gate, as for puts).
func (m *txManager) appendAll(groups []*partBatch) error {
	results := make(chan error, len(groups))
	for _, g := range groups {
		topic, part := g.topic, g.p.ID()
		done := func(r store.AppendResult, err error) {
			if err != nil {
				results <- err
				return
			}
			m.b.gate(topic, part, r.Offset+r.Size, func(err error) { results <- err })
		}
		if err := m.enqueue(g.p, g.msgs, done); err != nil {
			results <- err
		}
	}
	var errs []error
	for range groups {
		if err := <-results; err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, g := range groups {
		if err := m.flushIfThreshold(g); err != nil {
			return err
		}
		m.b.waiters.notify(partKey(g.topic, g.p.ID())) // wake long-poll gets
	}
	return nil
}

// enqueue is AppendBatch that waits out a full queue (off the event loop).
func (m *txManager) enqueue(p *store.Partition, msgs []store.Message, done func(store.AppendResult, error)) error {
	deadline := time.Now().Add(queueFullPatience)
	for wait := 100 * time.Microsecond; ; wait = min(2*wait, 50*time.Millisecond) {
		err := p.AppendBatch(msgs, done)
		if !errors.Is(err, store.ErrQueueFull) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait)
	}
}

// flushIfThreshold makes a batch durable in threshold mode, where the
// append callback runs before the fsync (group commit needs nothing more).
func (m *txManager) flushIfThreshold(g *partBatch) error {
	f := m.b.opts.Store.Flush
	if m.b.opts.Store.Topic != nil {
		f = m.b.opts.Store.Topic(g.topic).Flush
	}
	if f.Mode != store.Threshold {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), queueFullPatience)
	defer cancel()
	return g.p.Flush(ctx)
}

// ensureAll appends to each partition the part of its batch it lacks.
func (m *txManager) ensureAll(groups []*partBatch, parts []txlog.PartStart) error {
	for _, g := range groups {
		start := int64(0)
		for _, ps := range parts {
			if ps.Topic == g.topic && ps.Partition == g.part {
				start = ps.Offset
			}
		}
		if err := m.ensurePartition(g, start); err != nil {
			return fmt.Errorf("partition %s-%d: %w", g.topic, g.part, err)
		}
	}
	return nil
}

// ensurePartition finds how much of g's batch is in the partition at or
// after start and appends the rest. A batch lands contiguously at or after
// the visible end recorded before the COMMIT record was written, and a
// crash can only leave a prefix of it (recovery truncates the log at the
// first torn message), so it suffices to find the batch's first message id
// and count the consecutive matching ids that follow.
func (m *txManager) ensurePartition(g *partBatch, start int64) error {
	p, msgs := g.p, g.msgs
	present := 0
	var broken error
	err := scanMessages(p, start, m.b.opts.MaxTransferSize, func(off int64, h store.Header, _ []byte) bool {
		switch {
		case h.ID == msgs[present].ID:
			present++
		case present > 0:
			broken = fmt.Errorf("the transaction's batch is interrupted at offset %d after %d of %d messages", off, present, len(msgs))
			return false
		}
		return present < len(msgs)
	})
	if err == nil {
		err = broken
	}
	if err != nil {
		return err
	}
	if present == len(msgs) {
		return nil
	}
	if present > 0 {
		m.b.log.Warn("completing a transaction batch a crash left half-written", "partition", store.PartitionDirName(g.topic, int(g.part)),
			"present", present, "missing", len(msgs)-present)
	}
	rest := &partBatch{topic: g.topic, part: g.part, p: p, msgs: msgs[present:]}
	return m.appendAll([]*partBatch{rest})
}
