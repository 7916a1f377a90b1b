package zkrecipes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"

	"github.com/go-zookeeper/zk"
)

// GroupMember is one process's membership of a group (Curator's
// GroupMember): an ephemeral node <group>/<member id> holding the member's
// data, re-created by a background loop after the session is lost (or if
// somebody deletes it), plus a ChildrenCache of the group for Members.
//
// Watches: one data watch on the member's own node (to heal it) and the
// cache's child watch on the group plus one data watch per member. The
// group's node itself is persistent and stays after Leave.
type GroupMember struct {
	s     *Session
	dir   string
	id    string
	node  string
	cache *ChildrenCache
	loop  recipeLoop

	mu    sync.Mutex // guards data and owned
	data  []byte
	owned map[int64]bool // sessions under which we created the node
	kick  chan struct{}  // SetData asks the loop to rewrite the node
	left  bool
}

// JoinGroup adds member id (a single path element) with data to the group
// at dir (created if missing) and waits until its node exists and the
// membership cache is loaded, or ctx ends. Leave (or Close) when done.
func JoinGroup(ctx context.Context, s *Session, dir, id string, data []byte) (*GroupMember, error) {
	if err := validatePath(dir); err != nil {
		return nil, err
	}
	if id == "" || strings.Contains(id, "/") || id == "." || id == ".." {
		return nil, fmt.Errorf("%w: member id %q must be one non-empty path element", ErrBadPath, id)
	}
	g := &GroupMember{s: s, dir: dir, id: id, node: path.Join(dir, id), data: append([]byte(nil), data...),
		owned: map[int64]bool{}, kick: make(chan struct{}, 1)}
	if err := retryTransient(ctx, s, func() error { return s.EnsurePath(ctx, dir) }); err != nil {
		return nil, fmt.Errorf("zkrecipes: group %s: join: %w", dir, err)
	}
	first := make(chan error, 1)
	g.loop.start(func(lctx context.Context) { g.run(lctx, first) })
	select {
	case err := <-first:
		if err != nil {
			g.loop.stop()
			return nil, fmt.Errorf("zkrecipes: group %s: join as %s: %w", dir, id, err)
		}
	case <-ctx.Done():
		_ = g.Leave(context.Background())
		return nil, fmt.Errorf("zkrecipes: group %s: join as %s: %w", dir, id, ctx.Err())
	}
	cache, err := NewChildrenCache(ctx, s, dir)
	if err != nil {
		_ = g.Leave(context.Background())
		return nil, fmt.Errorf("zkrecipes: group %s: join as %s: %w", dir, id, err)
	}
	g.cache = cache
	return g, nil
}

// ID returns this member's id.
func (g *GroupMember) ID() string { return g.id }

// Members returns the current members' data by member id, as cached (this
// member is included once its node is seen).
func (g *GroupMember) Members() map[string][]byte {
	snap := g.cache.Snapshot()
	out := make(map[string][]byte, len(snap))
	for name, nd := range snap {
		out[name] = nd.Data
	}
	return out
}

// Subscribe returns the membership changes: ChildAdded per current member,
// then joins (ChildAdded), data changes (ChildUpdated) and departures
// (ChildRemoved) in order. Close the stream when done.
func (g *GroupMember) Subscribe() *Stream[ChildEvent] { return g.cache.Subscribe() }

// SetData changes this member's data: the background loop writes it to the
// node (and uses it for re-creations). It does not wait for the write.
func (g *GroupMember) SetData(data []byte) {
	g.mu.Lock()
	g.data = append([]byte(nil), data...)
	g.mu.Unlock()
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// Leave stops healing, deletes this member's node (if it is ours) and stops
// the cache. Calling it again does nothing.
func (g *GroupMember) Leave(ctx context.Context) error {
	g.mu.Lock()
	if g.left {
		g.mu.Unlock()
		return nil
	}
	g.left = true
	g.mu.Unlock()
	g.loop.stop()
	if g.cache != nil {
		g.cache.Close()
	}
	err := retryTransient(ctx, g.s, func() error {
		_, st, err := g.s.Get(ctx, g.node)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		if !g.ownedBy(st.EphemeralOwner) {
			return nil // someone else's node with our id: not ours to delete
		}
		err = g.s.Delete(ctx, g.node, st.Version)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("zkrecipes: group %s: leave as %s: %w", g.dir, g.id, err)
	}
	return nil
}

// Close is Leave with a timeout of one session timeout.
func (g *GroupMember) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), g.s.Timeout())
	defer cancel()
	_ = g.Leave(ctx)
}

func (g *GroupMember) ownedBy(owner int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return owner != 0 && g.owned[owner]
}

// run keeps the member node present: create it under the current session,
// watch it, and create it again when the session is lost or it disappears.
// The first outcome goes to first.
func (g *GroupMember) run(ctx context.Context, first chan<- error) {
	var bo retryDelay
	for {
		id, err := connectedSessionID(ctx, g.s)
		if err != nil {
			sendOnce(&first, err)
			return
		}
		ch, ours, err := g.ensure(ctx, id)
		if err != nil {
			if !isTransientErr(err) && !errors.Is(err, errStepAgain) && ctx.Err() == nil {
				sendOnce(&first, err) // e.g. NoAuth: report it, keep trying
			}
			if bo.wait(ctx) != nil {
				return
			}
			continue
		}
		bo.reset()
		if ours {
			sendOnce(&first, nil)
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-g.kick:
		case <-g.s.Expired(id):
		}
	}
}

func sendOnce(ch *chan<- error, err error) {
	if *ch != nil {
		*ch <- err
		*ch = nil
	}
}

// ensure makes the member node exist, owned by session id, with our data,
// and returns a data watch on it; ours is false while the id is held by a
// foreign session (the watch then fires when that node goes). A node left by
// one of our earlier sessions (not yet expired on the server) is replaced.
func (g *GroupMember) ensure(ctx context.Context, id int64) (ch <-chan zk.Event, ours bool, err error) {
	g.mu.Lock()
	data := g.data
	g.owned[id] = true
	g.mu.Unlock()
	_, err = g.s.Create(ctx, g.node, data, Ephemeral)
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return nil, false, err
	}
	got, st, ch, err := g.s.GetW(ctx, g.node)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return nil, false, errStepAgain // deleted right away: try again
	case err != nil:
		return nil, false, err
	case st.EphemeralOwner == id:
		if !bytes.Equal(got, data) {
			if _, err := g.s.Set(ctx, g.node, data, st.Version); err != nil && !errors.Is(err, zk.ErrBadVersion) {
				return nil, false, err
			}
			// The watch fires for our own write and we check again.
		}
		return ch, true, nil
	case g.ownedBy(st.EphemeralOwner):
		if err := g.s.Delete(ctx, g.node, st.Version); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return nil, false, err
		}
		return nil, false, errStepAgain
	default:
		g.s.log.Warn("group member id is held by another session; waiting for it to go",
			"group", g.dir, "member", g.id, "owner", fmt.Sprintf("0x%x", st.EphemeralOwner))
		return ch, false, nil
	}
}
