package zkrecipes

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-zookeeper/zk"
)

// ErrOutcomeUnknown means the connection dropped while a write was in flight
// and the recipe could not tell afterwards whether the write took effect.
var ErrOutcomeUnknown = errors.New("zkrecipes: outcome unknown: the connection dropped before the reply")

// Counter is a shared int64 (Curator's SharedCount / DistributedAtomicLong):
// one persistent node holding the value as decimal text, updated by
// compare-and-set on the node's version. WaitChange holds one data watch per
// waiting caller.
type Counter struct {
	s    *Session
	path string
	seed int64
}

// NewCounter returns a counter at p whose node is created holding seed the
// first time it is needed.
func NewCounter(s *Session, p string, seed int64) (*Counter, error) {
	if err := validatePath(p); err != nil {
		return nil, err
	}
	return &Counter{s: s, path: p, seed: seed}, nil
}

func (c *Counter) errorf(op string, err error) error {
	return fmt.Errorf("zkrecipes: counter %s: %s: %w", c.path, op, err)
}

func parseCount(p string, data []byte) (int64, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("zkrecipes: counter %s holds %q, not a decimal int64: %w", p, data, err)
	}
	return v, nil
}

func formatCount(v int64) []byte { return strconv.AppendInt(nil, v, 10) }

// read returns the value and version, creating the node with the seed if missing.
func (c *Counter) read(ctx context.Context) (int64, int32, error) {
	var v int64
	var ver int32
	err := retryTransient(ctx, c.s, func() error {
		for {
			data, st, err := c.s.Get(ctx, c.path)
			if errors.Is(err, zk.ErrNoNode) {
				_, err = c.s.CreateParents(ctx, c.path, formatCount(c.seed), Persistent)
				if err == nil || errors.Is(err, zk.ErrNodeExists) {
					continue
				}
				return err
			}
			if err != nil {
				return err
			}
			v, err = parseCount(c.path, data)
			ver = st.Version
			return err
		}
	})
	return v, ver, err
}

// Get returns the current value and the node version to pass to TrySetCount.
func (c *Counter) Get(ctx context.Context) (value int64, version int32, err error) {
	v, ver, err := c.read(ctx)
	if err != nil {
		return 0, 0, c.errorf("get", err)
	}
	return v, ver, nil
}

// TrySetCount sets the value if the node's version is still expectedVersion
// and returns the new version. If another writer got there first the error
// wraps ErrBadVersion: re-read with Get and decide again. If the connection
// drops while the write is in flight and the outcome cannot be established,
// the error wraps ErrOutcomeUnknown.
func (c *Counter) TrySetCount(ctx context.Context, value int64, expectedVersion int32) (int32, error) {
	ver, err := c.cas(ctx, value, expectedVersion)
	if err != nil {
		return 0, c.errorf("set", err)
	}
	return ver, nil
}

// cas writes value at expectedVersion. After a lost reply it re-reads: if the
// version is still the expected one the write did not happen and is retried;
// otherwise the outcome is unknown.
func (c *Counter) cas(ctx context.Context, value int64, expectedVersion int32) (int32, error) {
	for {
		st, err := c.s.Set(ctx, c.path, formatCount(value), expectedVersion)
		if err == nil {
			return st.Version, nil
		}
		if errors.Is(err, zk.ErrNoNode) {
			if _, _, rerr := c.read(ctx); rerr != nil { // create with the seed, then compare versions
				return 0, rerr
			}
			continue
		}
		if !isTransientErr(err) || ctx.Err() != nil {
			return 0, err
		}
		_, ver, rerr := c.read(ctx)
		if rerr != nil {
			return 0, rerr
		}
		if ver != expectedVersion {
			return 0, fmt.Errorf("%w (%w)", ErrOutcomeUnknown, err)
		}
	}
}

// Set sets the value unconditionally.
func (c *Counter) Set(ctx context.Context, value int64) error {
	for {
		_, ver, err := c.read(ctx)
		if err != nil {
			return c.errorf("set", err)
		}
		_, err = c.cas(ctx, value, ver)
		if errors.Is(err, zk.ErrBadVersion) {
			continue
		}
		if err != nil {
			return c.errorf("set", err)
		}
		return nil
	}
}

// Add adds delta with a compare-and-set loop and returns the new value.
// Concurrent Adds from any number of clients sum exactly. If the connection
// drops while a write is in flight and the outcome cannot be established, the
// error wraps ErrOutcomeUnknown (the add may or may not have happened); the
// same holds when ctx ends while a write is in flight.
func (c *Counter) Add(ctx context.Context, delta int64) (int64, error) {
	for {
		v, ver, err := c.read(ctx)
		if err != nil {
			return 0, c.errorf("add", err)
		}
		_, err = c.cas(ctx, v+delta, ver)
		if errors.Is(err, zk.ErrBadVersion) {
			continue
		}
		if err != nil {
			return 0, c.errorf("add", err)
		}
		return v + delta, nil
	}
}

// WaitChange blocks until the counter's version differs from version (pass
// the one Get returned) and returns the new value and version, or ctx's
// error. It re-reads after every watch event and re-arms its watch after a
// reconnect or session loss, so no change is missed.
func (c *Counter) WaitChange(ctx context.Context, version int32) (int64, int32, error) {
	var bo retryDelay
	for {
		id, err := connectedSessionID(ctx, c.s)
		if err != nil {
			return 0, 0, c.errorf("wait", err)
		}
		data, st, ch, err := c.s.GetW(ctx, c.path)
		if errors.Is(err, zk.ErrNoNode) {
			if _, _, err = c.read(ctx); err == nil {
				continue
			}
		}
		if err == nil {
			if st.Version != version {
				v, perr := parseCount(c.path, data)
				if perr != nil {
					return 0, 0, perr
				}
				return v, st.Version, nil
			}
			if err = awaitWatch(ctx, c.s, id, ch); err == nil {
				bo.reset()
				continue
			}
		}
		if ctx.Err() != nil || !isTransientErr(err) {
			return 0, 0, c.errorf("wait", err)
		}
		if werr := bo.wait(ctx); werr != nil {
			return 0, 0, c.errorf("wait", werr)
		}
	}
}

// Delete removes the counter's node (for cleanup; the next use re-creates it
// with the seed).
func (c *Counter) Delete(ctx context.Context) error {
	if err := retryTransient(ctx, c.s, func() error { return c.s.DeleteIfExists(ctx, c.path) }); err != nil {
		return c.errorf("delete", err)
	}
	return nil
}
