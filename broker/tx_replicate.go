package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/metaq-go/metaq/broker/replica"
	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/broker/txlog"
)

// The transaction stream (docs/REPLICATION.md, "Transactions"): a master
// appends the journal records of its XA transactions (PREPARE with the
// messages, the COMMIT of a prepared transaction with its partition
// starts, DONE, ROLLBACK, FORGET) to the internal partition __tx-0 in the
// journal's frame encoding. A record larger than one message may be
// (maxMessageSize, maxTransferSize) is split over consecutive messages of
// one atomic batch; every message but a record's last has flag
// txStreamMore. Followers copy it like
// every partition, so a PREPARE or ROLLBACK answered only once the sync
// gate passed is on every in-sync sync follower's disk. A member that
// starts leading folds the stream (adoptReplicated) and takes over the
// transactions that its own journal does not know.
const txStreamTopic = "__tx"

// txStreamMore flags a message of the transaction stream that the next one
// continues.
const txStreamMore = 1

// replicateTx appends rec to the transaction stream. With wait it returns
// once the record is durable on this master and on every in-sync sync
// follower (the sync gate); without, once it is queued. Before replication
// is set up (New completing interrupted commits) it does nothing; on a
// member that is not master it refuses (a follower's log must stay a copy
// of its master's).
func (b *Broker) replicateTx(rec txlog.Record, wait bool) error {
	if b.repl.history == nil {
		return nil
	}
	if b.repl.tracker.Load() == nil || b.repl.follower.Load() {
		return replica.ErrNotLeading
	}
	p, err := b.store.Partition(txStreamTopic, 0, true)
	if err != nil {
		return fmt.Errorf("open the transaction stream %s-0: %w", txStreamTopic, err)
	}
	msgs := b.txStreamChunks(txlog.AppendRecord(nil, &rec))
	if !wait {
		return b.tx.enqueue(p, msgs, func(store.AppendResult, error) {})
	}
	return b.tx.appendAll([]*partBatch{{topic: txStreamTopic, p: p, msgs: msgs}})
}

// txStreamChunks splits a framed record into the messages that carry it.
func (b *Broker) txStreamChunks(frame []byte) []store.Message {
	chunk := max(min(b.opts.MaxMessageSize, b.opts.MaxTransferSize-store.HeaderSize), 1)
	var msgs []store.Message
	for len(frame) > chunk {
		msgs = append(msgs, store.Message{Data: frame[:chunk], Flag: txStreamMore})
		frame = frame[chunk:]
	}
	return append(msgs, store.Message{Data: frame})
}

// adoptReplicated folds the transaction stream this member holds (as the
// masters before it wrote it) and takes over every transaction the stream
// leaves live that this broker does not know: it journals it (PREPARE, or
// the COMMIT with its messages and partition starts) and lists it like a
// transaction recovered from its own journal. A commit the old master had
// decided stays pending (listed by InDoubt) until the transaction manager
// commits again, which appends to each partition only what it lacks.
// Outcomes in the stream are remembered so that replayed decisions answer
// 200. Lead calls it before the member accepts requests as master.
func (m *txManager) adoptReplicated() error {
	p, err := m.b.store.Partition(txStreamTopic, 0, false)
	if errors.Is(err, store.ErrNoPartition) {
		return nil
	}
	if err != nil {
		return err
	}
	st := txlog.NewState(maxRememberedOutcomes)
	var frame []byte
	err = scanMessages(p, p.Earliest(), m.b.opts.MaxTransferSize, func(off int64, h store.Header, data []byte) bool {
		frame = append(frame, data...)
		if h.Flag&txStreamMore != 0 {
			return true
		}
		rec, n, err := txlog.DecodeRecord(frame)
		whole := n == len(frame)
		frame = nil
		if err != nil || !whole {
			m.b.log.Warn("replication: skipping a damaged record of the transaction stream", "offset", off, "err", err)
			return true
		}
		st.Apply(&rec)
		return true
	})
	if err != nil {
		return fmt.Errorf("read the transaction stream: %w", err)
	}
	var adopt []*txlog.Tx
	var settle []txlog.KeyOutcome
	m.mu.Lock()
	for _, ko := range st.Outcomes() {
		t, live := m.txs[ko.Key]
		switch {
		case !live:
			out := outCommitted
			if ko.Outcome == txlog.RolledBack {
				out = outRolledBack
			}
			m.remember(ko.Key, out)
		case t.phase == txPrepared:
			// Prepared here while this member was master; a later master
			// finished it (its appends reached this log by replication).
			settle = append(settle, ko)
		}
	}
	for _, lt := range st.Live {
		if _, live := m.txs[lt.Key]; !live {
			if _, finished := m.outcomes[lt.Key]; !finished {
				adopt = append(adopt, lt)
			}
		}
	}
	m.mu.Unlock()
	for _, ko := range settle {
		rec, out := txlog.Record{Kind: txlog.KindDone, Key: ko.Key}, outCommitted
		if ko.Outcome == txlog.RolledBack {
			rec.Kind, out = txlog.KindRollback, outRolledBack
		}
		if err := m.j.AppendWait(rec, true); err != nil {
			return fmt.Errorf("journal the outcome of transaction %s decided by another master: %w", ko.Key, err)
		}
		m.mu.Lock()
		if t := m.txs[ko.Key]; t != nil && t.phase == txPrepared {
			m.finish(t, out)
		}
		m.mu.Unlock()
		m.b.log.Info("replication: a transaction prepared here was finished by another master", "tx", ko.Key, "rolled_back", ko.Outcome == txlog.RolledBack)
	}
	now := time.Now()
	for _, lt := range adopt {
		if err := m.j.AppendWait(journalRecord(lt), true); err != nil {
			return fmt.Errorf("journal transaction %s taken over from the old master: %w", lt.Key, err)
		}
		m.mu.Lock()
		if _, live := m.txs[lt.Key]; !live {
			m.restore(lt, now)
		}
		m.mu.Unlock()
		m.b.log.Info("replication: took over a transaction of the old master", "tx", lt.Key, "state", lt.State.String())
	}
	return nil
}

// journalRecord is the record that makes lt live in a journal that does
// not know it.
func journalRecord(lt *txlog.Tx) txlog.Record {
	switch lt.State {
	case txlog.Committing:
		return txlog.Record{Kind: txlog.KindCommit, Key: lt.Key, Heuristic: lt.Heuristic, Inline: true, Msgs: lt.Msgs, Parts: lt.Parts, Owner: lt.Owner}
	case txlog.HeuristicCommitted:
		return txlog.Record{Kind: txlog.KindDone, Key: lt.Key, Heuristic: true, Owner: lt.Owner}
	case txlog.HeuristicRolledBack:
		return txlog.Record{Kind: txlog.KindRollback, Key: lt.Key, Heuristic: true, Owner: lt.Owner}
	}
	return txlog.Record{Kind: txlog.KindPrepare, Key: lt.Key, Msgs: lt.Msgs, Owner: lt.Owner}
}

// scanMessages calls fn for every message of p from offset from to its
// end, until fn returns false. readSize must hold the largest message.
func scanMessages(p *store.Partition, from int64, readSize int, fn func(off int64, h store.Header, data []byte) bool) error {
	off, end := max(from, p.Earliest()), p.End()
	for off < end {
		sl, err := p.Read(off, max(readSize, 1<<20))
		if errors.Is(err, store.ErrCaughtUp) {
			return nil
		}
		if err != nil {
			return err
		}
		buf, err := sl.ReadAll(nil)
		sl.Release()
		if err != nil {
			return err
		}
		adv := 0
		for len(buf)-adv >= store.HeaderSize {
			h := store.ParseHeader(buf[adv:])
			n := store.HeaderSize + int(h.Len)
			if h.Len < 0 || n > len(buf)-adv {
				break
			}
			if !fn(off+int64(adv), h, buf[adv+store.HeaderSize:adv+n]) {
				return nil
			}
			adv += n
		}
		if adv == 0 {
			return fmt.Errorf("cannot parse the message at offset %d", off)
		}
		off += int64(adv)
	}
	return nil
}
