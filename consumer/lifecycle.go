package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/zkrecipes"
)

// start connects, joins the group (or takes every partition in broadcast
// mode) and starts the committer.
func (c *Consumer) start(ctx context.Context) error {
	sess, err := zkrecipes.Connect(ctx, c.opts.zkServers, append([]zkrecipes.Option{zkrecipes.WithSessionTimeout(c.opts.sessionTimeout),
		zkrecipes.WithLogger(c.log)}, c.paths.SessionOptions(c.opts.zkUser, c.opts.zkPassword, coordinator.RoleGroup)...)...)
	if err != nil {
		return err
	}
	c.sess = sess
	if c.opts.broadcastDir == "" {
		if err := coordinator.CheckIdentity(ctx, sess, c.paths.Group(c.group)); err != nil {
			return fmt.Errorf("consumer: group %s: %w", c.group, err)
		}
	}
	c.view = coordinator.NewClusterView(sess, c.paths, coordinator.WithViewLogger(c.log))
	c.brokers = newBrokerPool(c.view, c.log, conn.Options{TLS: c.opts.tls, Auth: c.opts.auth})
	if c.opts.broadcastDir != "" {
		c.offsets = &fileOffsets{dir: c.opts.broadcastDir}
		if err := c.offsets.init(); err != nil {
			return err
		}
		if err := c.syncBroadcast(ctx); err != nil {
			return err
		}
		c.wg.Add(1)
		go c.broadcastLoop()
	} else {
		g, err := coordinator.JoinGroup(ctx, sess, c.paths, coordinator.GroupOptions{Group: c.group, Topics: c.topics(),
			InstanceID: c.opts.instanceID, Handler: groupHandler{c}, Logger: c.log})
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.members = g
		c.mu.Unlock()
	}
	close(c.ready)
	if c.opts.autoCommit > 0 {
		c.wg.Add(1)
		go c.commitLoop()
	}
	return nil
}

// shutdown stops everything in order; used by Close and by a failed Start.
func (c *Consumer) shutdown(ctx context.Context) error {
	c.stopOnce.Do(func() { close(c.stop) })
	c.markPolled() // Close means the caller is done with what Poll returned
	var errs []error
	c.mu.Lock()
	g := c.members
	c.mu.Unlock()
	if g != nil {
		// Revokes every partition through groupHandler.Revoked: stop, wait
		// for in-flight handlers, commit, release ownership.
		if err := g.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	// Broadcast mode, or whatever the group could not revoke in time.
	c.mu.Lock()
	rest := make([]*partState, 0, len(c.parts))
	for tp, ps := range c.parts {
		rest = append(rest, ps)
		delete(c.parts, tp)
	}
	c.mu.Unlock()
	c.stopParts(ctx, rest, false)
	if c.offsets != nil || g == nil {
		for _, ps := range rest {
			if err := c.commitPart(ctx, ps); err != nil {
				errs = append(errs, err)
			}
		}
	}
	c.wg.Wait()
	if c.brokers != nil {
		c.brokers.close()
	}
	if c.view != nil {
		_ = c.view.Close()
	}
	if c.sess != nil {
		c.sess.Close()
	}
	return errors.Join(errs...)
}

// addParts creates and starts fetchers for tps (skipping those present).
func (c *Consumer) addParts(tps []TopicPartition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tp := range tps {
		if c.parts[tp] != nil {
			continue
		}
		ps := newPartState(c, tp)
		c.parts[tp] = ps
		ps.start(c.handlers[tp.Topic])
	}
}

// lookupParts returns the states of tps.
func (c *Consumer) lookupParts(tps []TopicPartition) []*partState {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*partState
	for _, tp := range tps {
		if ps := c.parts[tp]; ps != nil {
			out = append(out, ps)
		}
	}
	return out
}

// removeParts takes tps out of the map and returns their states.
func (c *Consumer) removeParts(tps []TopicPartition) []*partState {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*partState
	for _, tp := range tps {
		if ps := c.parts[tp]; ps != nil {
			out = append(out, ps)
			delete(c.parts, tp)
		}
	}
	return out
}

// stopParts stops the partitions and waits for their goroutines (in-flight
// handlers finish; if ctx ends first their ctx is cancelled).
func (c *Consumer) stopParts(ctx context.Context, parts []*partState, lost bool) {
	for _, ps := range parts {
		ps.halt(lost)
	}
	done := make(chan struct{})
	go func() {
		for _, ps := range parts {
			ps.wg.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		for _, ps := range parts {
			ps.hstop()
		}
		<-done
	}
	for _, ps := range parts {
		ps.hstop() // release the context
	}
}

// groupHandler adapts the group member's callbacks.
type groupHandler struct{ c *Consumer }

func toTPs(in []coordinator.TopicPartition) []TopicPartition {
	out := make([]TopicPartition, len(in))
	for i, tp := range in {
		out[i] = TopicPartition{Topic: tp.Topic, BrokerID: tp.BrokerID, Partition: tp.Partition.Partition}
	}
	slices.SortFunc(out, compareTP)
	return out
}

func (h groupHandler) Assigned(ctx context.Context, in []coordinator.TopicPartition) {
	c, tps := h.c, toTPs(in)
	c.log.Info("consumer: partitions assigned", "partitions", len(tps))
	if c.opts.listener.Assigned != nil {
		c.opts.listener.Assigned(ctx, tps)
	}
	c.addParts(tps)
}

func (h groupHandler) Revoked(ctx context.Context, in []coordinator.TopicPartition) {
	c, tps := h.c, toTPs(in)
	// The states stay in c.parts (stopped) until the end so that Commit
	// inside the listener sees them.
	parts := c.lookupParts(tps)
	c.stopParts(ctx, parts, false)
	if c.pollStyle.Load() {
		c.waitPolled(ctx, parts)
	}
	if c.opts.listener.Revoked != nil {
		c.opts.listener.Revoked(ctx, tps)
	}
	if c.opts.autoCommit > 0 {
		for _, ps := range parts {
			if err := c.commitPart(ctx, ps); err != nil {
				c.log.Warn("consumer: commit on revocation failed", "partition", ps.tp, "err", err)
			}
		}
	}
	c.removeParts(tps)
	c.log.Info("consumer: partitions revoked", "partitions", len(tps))
}

func (h groupHandler) Lost(in []coordinator.TopicPartition) {
	c, tps := h.c, toTPs(in)
	parts := c.removeParts(tps)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.stopParts(ctx, parts, true)
	c.stats.lost.Add(int64(len(tps)))
	c.log.Warn("consumer: partitions lost (ZooKeeper session ended, or the owner node changed or vanished): "+
		"nothing more of them is delivered here and their uncommitted work will be redelivered to the next owner",
		"partitions", tpList(tps))
	if c.opts.listener.Lost != nil {
		c.opts.listener.Lost(tps)
	}
}

func (h groupHandler) Suspended() {
	h.c.gate.suspend()
	h.c.log.Warn("consumer: suspended: ZooKeeper session or ownership in doubt; delivery paused")
}

func (h groupHandler) Resumed() {
	h.c.gate.resume()
	h.c.log.Info("consumer: resumed")
}
