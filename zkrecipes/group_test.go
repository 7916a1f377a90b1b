package zkrecipes_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/zkrecipes"
)

func members(g *zkrecipes.GroupMember) map[string]string {
	out := map[string]string{}
	for k, v := range g.Members() {
		out[k] = string(v)
	}
	return out
}

func TestGroupMembershipJoinHealLeave(t *testing.T) {
	ss := coShared(t, 3)
	root := testRoot(t)
	ctx := coCtx(t, 30*time.Second)
	dir := root + "/g"
	g0, err := zkrecipes.JoinGroup(ctx, ss[0], dir, "m0", []byte("d0"))
	require.NoError(t, err)
	defer g0.Close()
	st := g0.Subscribe()
	defer st.Close()
	g1, err := zkrecipes.JoinGroup(ctx, ss[1], dir, "m1", []byte("d1"))
	require.NoError(t, err)
	defer g1.Close()
	g2, err := zkrecipes.JoinGroup(ctx, ss[2], dir, "m2", []byte("d2"))
	require.NoError(t, err)
	all := map[string]string{"m0": "d0", "m1": "d1", "m2": "d2"}
	for _, g := range []*zkrecipes.GroupMember{g0, g1, g2} {
		require.Eventually(t, func() bool { return mapsEqual(members(g), all) }, 10*time.Second, 10*time.Millisecond)
	}

	// m1's session expires: its node goes and comes back under the new session.
	old := ss[1].ID()
	coExpire(t, ss[1])
	require.Eventually(t, func() bool {
		_, st, err := ss[0].Get(ctx, dir+"/m1")
		return err == nil && st.EphemeralOwner == ss[1].ID() && st.EphemeralOwner != old
	}, 15*time.Second, 10*time.Millisecond, "member node not re-created under the new session")
	require.Eventually(t, func() bool { return mapsEqual(members(g0), all) }, 10*time.Second, 10*time.Millisecond)

	// Someone deletes m2's node: it heals too.
	require.NoError(t, ss[0].Delete(ctx, dir+"/m2", -1))
	require.Eventually(t, func() bool {
		ok, _, err := ss[0].Exists(ctx, dir+"/m2")
		return err == nil && ok
	}, 10*time.Second, 10*time.Millisecond)

	// Data changes are seen by everyone.
	g2.SetData([]byte("d2b"))
	all["m2"] = "d2b"
	require.Eventually(t, func() bool { return mapsEqual(members(g0), all) }, 10*time.Second, 10*time.Millisecond)

	// Leave removes the member.
	require.NoError(t, g2.Leave(ctx))
	require.NoError(t, g2.Leave(ctx), "leaving twice is fine")
	delete(all, "m2")
	require.Eventually(t, func() bool { return mapsEqual(members(g0), all) && mapsEqual(members(g1), all) }, 10*time.Second, 10*time.Millisecond)
	seenRemoved := false
	for !seenRemoved {
		select {
		case ev := <-st.C:
			seenRemoved = ev.Type == zkrecipes.ChildRemoved && ev.Name == "m2"
		case <-time.After(10 * time.Second):
			t.Fatal("no removal event for m2")
		}
	}
	g1.Close()
	g0.Close()
	coRequireTree(t, ss[2], dir) // no member node left behind
}

func TestGroupJoinCancelledLeavesNothing(t *testing.T) {
	ss := coShared(t, 2)
	root := testRoot(t)
	ctx := coCtx(t, 20*time.Second)
	dir := root + "/g"
	// Another live session holds the id: Join waits for it and gives up at ctx's end.
	_, err := ss[1].CreateParents(ctx, dir+"/dup", []byte("x"), zkrecipes.Ephemeral)
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = zkrecipes.JoinGroup(short, ss[0], dir, "dup", []byte("y"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	data, _, err := ss[0].Get(ctx, dir+"/dup")
	require.NoError(t, err)
	require.Equal(t, "x", string(data), "a foreign member node is left alone")
	// When the other holder goes, a new Join succeeds.
	require.NoError(t, ss[1].Delete(ctx, dir+"/dup", -1))
	g, err := zkrecipes.JoinGroup(ctx, ss[0], dir, "dup", []byte("y"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return mapsEqual(members(g), map[string]string{"dup": "y"}) }, 10*time.Second, 10*time.Millisecond)
	g.Close()
	coRequireTree(t, ss[1], dir)
}
