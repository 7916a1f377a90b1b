package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/metaq-go/metaq/coordinator"
)

// commitLoop commits processed offsets every auto-commit interval.
func (c *Consumer) commitLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.autoCommit)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-c.stop:
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(c.opts.autoCommit, 5*time.Second))
		if err := c.commitAll(ctx); err != nil {
			if errors.Is(err, ErrNotOwner) {
				// Ownership ended behind our back: the member puts the
				// partition in doubt, stops delivering it and reports it Lost.
				c.log.Warn("consumer: auto-commit refused: this consumer no longer owns the partition", "err", err)
			} else {
				c.log.Debug("consumer: auto-commit", "err", err)
			}
		}
		cancel()
	}
}

// commitAll commits the processed position of every fetched partition.
func (c *Consumer) commitAll(ctx context.Context) error {
	c.mu.Lock()
	parts := make([]*partState, 0, len(c.parts))
	for _, ps := range c.parts {
		parts = append(parts, ps)
	}
	c.mu.Unlock()
	var errs []error
	for _, ps := range parts {
		if err := c.commitPart(ctx, ps); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// commitPart stores ps's processed position if it moved past the committed one.
func (c *Consumer) commitPart(ctx context.Context, ps *partState) error {
	ps.commitMu.Lock()
	defer ps.commitMu.Unlock()
	ps.mu.Lock()
	o, done := ps.processed, ps.committed
	ps.mu.Unlock()
	if o.Offset < 0 || o.Offset <= done {
		return nil
	}
	return c.storeOffset(ctx, ps, ps.tp, o)
}

// commitMessages commits, per partition, the highest NextOffset of msgs.
func (c *Consumer) commitMessages(ctx context.Context, msgs []*Message) error {
	type pos struct {
		ps *partState
		o  coordinator.Offset
	}
	best := map[TopicPartition]pos{}
	for _, m := range msgs {
		if m == nil {
			continue
		}
		tp := m.TopicPartition()
		if p, ok := best[tp]; !ok || m.NextOffset > p.o.Offset {
			best[tp] = pos{ps: m.ps, o: coordinator.Offset{MsgID: m.ID, Offset: m.NextOffset}}
		}
	}
	var errs []error
	for tp, p := range best {
		if p.ps != nil {
			p.ps.markProcessed(p.o.Offset, p.o.MsgID)
			p.ps.commitMu.Lock()
		}
		err := c.storeOffset(ctx, p.ps, tp, p.o)
		if p.ps != nil {
			p.ps.commitMu.Unlock()
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// storeOffset writes o for tp (group: fenced commit; broadcast: the file)
// and records it in ps (may be nil).
func (c *Consumer) storeOffset(ctx context.Context, ps *partState, tp TopicPartition, o coordinator.Offset) error {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	var err error
	if c.offsets != nil {
		err = c.offsets.store(tp, o)
	} else {
		err = c.members.CommitOffset(ctx, tp.Topic, tp.BrokerID, tp.Partition, o.MsgID, o.Offset)
		if errors.Is(err, coordinator.ErrOffsetBackwards) {
			err = nil // an older position than what is stored: nothing to do
		}
	}
	if err != nil {
		c.stats.commitErrors.Add(1)
		return fmt.Errorf("consumer: commit %s at %d: %w", tp, o.Offset, err)
	}
	c.stats.commits.Add(1)
	if ps != nil {
		ps.mu.Lock()
		ps.committed = max(ps.committed, o.Offset)
		ps.mu.Unlock()
	}
	return nil
}

// loadOffset reads tp's committed offset.
func (c *Consumer) loadOffset(ctx context.Context, tp TopicPartition) (coordinator.Offset, bool, error) {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return coordinator.Offset{}, false, ctx.Err()
	}
	if c.offsets != nil {
		return c.offsets.load(tp)
	}
	return c.members.FetchOffset(ctx, tp.Topic, tp.BrokerID, tp.Partition)
}
