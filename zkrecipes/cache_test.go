package zkrecipes_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// nodeValue returns the cached data as a string, "<none>" when the node is absent.
func nodeValue(n *zkrecipes.NodeData) string {
	if n == nil {
		return "<none>"
	}
	return string(n.Data)
}

func nextNode(t *testing.T, st *zkrecipes.Stream[*zkrecipes.NodeData]) string {
	t.Helper()
	select {
	case n, ok := <-st.C:
		require.True(t, ok, "stream closed")
		return nodeValue(n)
	case <-time.After(10 * time.Second):
		t.Fatal("no node event within 10s")
		return ""
	}
}

type childEv struct{ typ, name, data string }

func nextChild(t *testing.T, st *zkrecipes.Stream[zkrecipes.ChildEvent]) childEv {
	t.Helper()
	select {
	case ev, ok := <-st.C:
		require.True(t, ok, "stream closed")
		return childEv{ev.Type.String(), ev.Name, string(ev.Data.Data)}
	case <-time.After(10 * time.Second):
		t.Fatal("no child event within 10s")
		return childEv{}
	}
}

// proxied connects a session through a fault proxy to the shared server.
func proxied(t *testing.T) (*zkrecipes.Session, *zktest.Proxy) {
	t.Helper()
	p := zktest.NewProxyT(t, zktest.Shared(t).Addr)
	return connect(t, []string{p.Addr()}), p
}

func TestNodeCacheTracksCreateUpdateDelete(t *testing.T) {
	ss := coShared(t, 2)
	root := testRoot(t)
	ctx := coCtx(t, 20*time.Second)
	p := root + "/node"
	c, err := zkrecipes.NewNodeCache(ctx, ss[0], p)
	require.NoError(t, err)
	defer c.Close()
	require.Nil(t, c.Get())
	st := c.Subscribe()
	defer st.Close()
	require.Equal(t, "<none>", nextNode(t, st))

	w := ss[1]
	_, err = w.CreateParents(ctx, p, []byte("a"), zkrecipes.Persistent)
	require.NoError(t, err)
	require.Equal(t, "a", nextNode(t, st))
	_, err = w.Set(ctx, p, []byte("b"), -1)
	require.NoError(t, err)
	require.Equal(t, "b", nextNode(t, st))
	require.NoError(t, w.Delete(ctx, p, -1))
	require.Equal(t, "<none>", nextNode(t, st))
	_, err = w.Create(ctx, p, []byte("c"), zkrecipes.Persistent)
	require.NoError(t, err)
	require.Equal(t, "c", nextNode(t, st))
	require.Equal(t, "c", nodeValue(c.Get()))
	require.Equal(t, p, c.Get().Path)
	c.Close()
	_, ok := <-st.C
	require.False(t, ok, "Close closes the streams")
	coRequireTree(t, w, root, "node") // the cache created nothing
}

// TestNodeCacheRecoversAfterExpiryAndReconnect changes the node while the
// cache's session is cut off, first with the session surviving (reconnect),
// then with the session expired meanwhile: the cache catches up both times
// and keeps tracking afterwards.
func TestNodeCacheRecoversAfterExpiryAndReconnect(t *testing.T) {
	s, px := proxied(t)
	w := coShared(t, 1)[0]
	root := testRoot(t)
	ctx := coCtx(t, 30*time.Second)
	p := root + "/node"
	_, err := w.CreateParents(ctx, p, []byte("v1"), zkrecipes.Persistent)
	require.NoError(t, err)
	c, err := zkrecipes.NewNodeCache(ctx, s, p)
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, "v1", nodeValue(c.Get()))

	// Reconnect with the same session.
	id := s.ID()
	px.Refuse(true)
	px.DropAll()
	require.Eventually(t, func() bool { return s.State() == zkrecipes.StateSuspended }, 5*time.Second, 5*time.Millisecond)
	_, err = w.Set(ctx, p, []byte("v2"), -1)
	require.NoError(t, err)
	px.Refuse(false)
	require.Eventually(t, func() bool { return nodeValue(c.Get()) == "v2" }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, id, s.ID(), "same session after reconnect")
	_, err = w.Set(ctx, p, []byte("v3"), -1)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return nodeValue(c.Get()) == "v3" }, 10*time.Second, 10*time.Millisecond)

	// Session expires while cut off; the node is deleted and re-created meanwhile.
	px.Refuse(true)
	px.DropAll()
	expire(t, zktest.Shared(t).Addr, s)
	require.NoError(t, w.Delete(ctx, p, -1))
	_, err = w.Create(ctx, p, []byte("v4"), zkrecipes.Persistent)
	require.NoError(t, err)
	px.Refuse(false)
	require.Eventually(t, func() bool { return s.ID() != 0 && s.ID() != id }, 15*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return nodeValue(c.Get()) == "v4" }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, w.Delete(ctx, p, -1))
	require.Eventually(t, func() bool { return c.Get() == nil }, 10*time.Second, 10*time.Millisecond)
	_, err = w.Create(ctx, p, []byte("v5"), zkrecipes.Persistent)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return nodeValue(c.Get()) == "v5" }, 10*time.Second, 10*time.Millisecond)
}

func TestChildrenCacheEventsInOrder(t *testing.T) {
	ss := coShared(t, 2)
	root := testRoot(t)
	ctx := coCtx(t, 20*time.Second)
	dir := root + "/kids"
	w := ss[1]
	require.NoError(t, w.EnsurePath(ctx, dir))
	_, err := w.Create(ctx, dir+"/a", []byte("a1"), zkrecipes.Persistent)
	require.NoError(t, err)
	c, err := zkrecipes.NewChildrenCache(ctx, ss[0], dir)
	require.NoError(t, err)
	defer c.Close()
	st := c.Subscribe()
	defer st.Close()
	require.Equal(t, childEv{"added", "a", "a1"}, nextChild(t, st), "a subscriber first gets the current children")

	_, err = w.Create(ctx, dir+"/b", []byte("b1"), zkrecipes.Persistent)
	require.NoError(t, err)
	require.Equal(t, childEv{"added", "b", "b1"}, nextChild(t, st))
	_, err = w.Set(ctx, dir+"/a", []byte("a2"), -1)
	require.NoError(t, err)
	require.Equal(t, childEv{"updated", "a", "a2"}, nextChild(t, st))
	require.NoError(t, w.Delete(ctx, dir+"/b", -1))
	require.Equal(t, childEv{"removed", "b", "b1"}, nextChild(t, st))
	_, err = w.Set(ctx, dir+"/a", []byte("a3"), -1)
	require.NoError(t, err)
	require.Equal(t, childEv{"updated", "a", "a3"}, nextChild(t, st), "data watch re-armed")

	// A burst: the final state is right and replaying the events gives it.
	replay := map[string]string{"a": "a3"}
	for i := range 20 {
		name := []string{"x", "y", "z"}[i%3]
		if i%4 == 3 {
			_ = w.DeleteIfExists(ctx, dir+"/"+name)
			continue
		}
		if _, err := w.Set(ctx, dir+"/"+name, []byte{byte('0' + i%10)}, -1); err != nil {
			_, err = w.Create(ctx, dir+"/"+name, []byte{byte('0' + i%10)}, zkrecipes.Persistent)
			require.NoError(t, err)
		}
	}
	kids, _, err := w.Children(ctx, dir)
	require.NoError(t, err)
	want := map[string]string{}
	for _, k := range kids {
		data, _, err := w.Get(ctx, dir+"/"+k)
		require.NoError(t, err)
		want[k] = string(data)
	}
	require.Eventually(t, func() bool {
		for {
			select {
			case ev := <-st.C:
				switch ev.Type {
				case zkrecipes.ChildAdded:
					if _, dup := replay[ev.Name]; dup {
						t.Errorf("added twice: %s", ev.Name)
					}
					replay[ev.Name] = string(ev.Data.Data)
				case zkrecipes.ChildUpdated:
					if _, ok := replay[ev.Name]; !ok {
						t.Errorf("updated before added: %s", ev.Name)
					}
					replay[ev.Name] = string(ev.Data.Data)
				case zkrecipes.ChildRemoved:
					if _, ok := replay[ev.Name]; !ok {
						t.Errorf("removed before added: %s", ev.Name)
					}
					delete(replay, ev.Name)
				}
				continue
			default:
			}
			return mapsEqual(replay, want) && mapsEqual(snapValues(c.Snapshot()), want)
		}
	}, 10*time.Second, 10*time.Millisecond, "replay %v want %v", replay, want)
}

func snapValues(m map[string]zkrecipes.NodeData) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = string(v.Data)
	}
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestChildrenCacheRecoversAfterExpiryAndReconnect changes children while
// the cache's session is cut off (once surviving, once expiring) and checks
// that the differences come out as events and tracking goes on afterwards.
func TestChildrenCacheRecoversAfterExpiryAndReconnect(t *testing.T) {
	s, px := proxied(t)
	w := coShared(t, 1)[0]
	root := testRoot(t)
	ctx := coCtx(t, 30*time.Second)
	dir := root + "/kids"
	require.NoError(t, w.EnsurePath(ctx, dir))
	for _, n := range []string{"a", "b"} {
		_, err := w.Create(ctx, dir+"/"+n, []byte(n+"1"), zkrecipes.Persistent)
		require.NoError(t, err)
	}
	c, err := zkrecipes.NewChildrenCache(ctx, s, dir)
	require.NoError(t, err)
	defer c.Close()
	st := c.Subscribe()
	defer st.Close()
	require.Equal(t, childEv{"added", "a", "a1"}, nextChild(t, st))
	require.Equal(t, childEv{"added", "b", "b1"}, nextChild(t, st))

	// Reconnect, same session.
	id := s.ID()
	px.Refuse(true)
	px.DropAll()
	require.Eventually(t, func() bool { return s.State() == zkrecipes.StateSuspended }, 5*time.Second, 5*time.Millisecond)
	_, err = w.Set(ctx, dir+"/a", []byte("a2"), -1)
	require.NoError(t, err)
	px.Refuse(false)
	require.Equal(t, childEv{"updated", "a", "a2"}, nextChild(t, st))
	require.Equal(t, id, s.ID())

	// Expiry while cut off: remove a, update b, add c.
	px.Refuse(true)
	px.DropAll()
	expire(t, zktest.Shared(t).Addr, s)
	require.NoError(t, w.Delete(ctx, dir+"/a", -1))
	_, err = w.Set(ctx, dir+"/b", []byte("b2"), -1)
	require.NoError(t, err)
	_, err = w.Create(ctx, dir+"/c", []byte("c1"), zkrecipes.Persistent)
	require.NoError(t, err)
	px.Refuse(false)
	require.Equal(t, childEv{"removed", "a", "a2"}, nextChild(t, st))
	require.Equal(t, childEv{"updated", "b", "b2"}, nextChild(t, st))
	require.Equal(t, childEv{"added", "c", "c1"}, nextChild(t, st))
	require.NotEqual(t, id, s.ID())

	// Watches are armed under the new session.
	_, err = w.Set(ctx, dir+"/c", []byte("c2"), -1)
	require.NoError(t, err)
	require.Equal(t, childEv{"updated", "c", "c2"}, nextChild(t, st))
	_, err = w.Create(ctx, dir+"/d", []byte("d1"), zkrecipes.Persistent)
	require.NoError(t, err)
	require.Equal(t, childEv{"added", "d", "d1"}, nextChild(t, st))
	require.Equal(t, map[string]string{"b": "b2", "c": "c2", "d": "d1"}, snapValues(c.Snapshot()))

	// Deleting the parent removes everything; re-creating it is noticed.
	for _, n := range []string{"b", "c", "d"} {
		require.NoError(t, w.Delete(ctx, dir+"/"+n, -1))
	}
	require.NoError(t, w.Delete(ctx, dir, -1))
	got := map[string]bool{}
	for range 3 {
		ev := nextChild(t, st)
		require.Equal(t, "removed", ev.typ)
		got[ev.name] = true
	}
	require.Len(t, got, 3)
	_, err = w.CreateParents(ctx, dir+"/e", []byte("e1"), zkrecipes.Persistent)
	require.NoError(t, err)
	require.Equal(t, childEv{"added", "e", "e1"}, nextChild(t, st))
}
