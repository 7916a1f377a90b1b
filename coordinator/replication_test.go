package coordinator_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

func replCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestReplicationEpochIsCompareAndSetAndISRIsFencedByIt(t *testing.T) {
	srv := zktest.Shared(t)
	ctx := replCtx(t)
	s := connect(t, srv.Addr)
	rs := coordinator.NewReplicaSet(s, coordinator.NewPaths(uniqueRoot(t)), 3, nil)

	_, err := rs.Epoch(ctx)
	require.ErrorIs(t, err, coordinator.ErrNoEpoch)
	t1, err := rs.Bootstrap(ctx, 0, "meta://127.0.0.1:1")
	require.NoError(t, err)
	require.Equal(t, int64(1), t1.Epoch.Epoch)
	_, err = rs.Bootstrap(ctx, 1, "meta://127.0.0.1:2")
	require.ErrorIs(t, err, coordinator.ErrEpochChanged, "a second bootstrap must not overwrite the epoch")

	e, isr, err := rs.State(ctx)
	require.NoError(t, err)
	require.Equal(t, coordinator.Epoch{Epoch: 1, Master: 0, URI: "meta://127.0.0.1:1", Version: e.Version}, e)
	require.Equal(t, []int{0}, isr.InSync)

	require.NoError(t, rs.WriteISR(ctx, t1, []int{1, 0, 1}))
	isr, err = rs.ISR(ctx)
	require.NoError(t, err)
	require.Equal(t, coordinator.ISR{Epoch: 1, InSync: []int{0, 1}, Version: isr.Version}, isr)

	t2, err := rs.BumpEpoch(ctx, e, 1, "meta://127.0.0.1:2", []int{1, 0})
	require.NoError(t, err)
	require.Equal(t, int64(2), t2.Epoch.Epoch)
	_, err = rs.BumpEpoch(ctx, e, 0, "meta://127.0.0.1:1", []int{0})
	require.ErrorIs(t, err, coordinator.ErrEpochChanged, "a bump from a stale version must fail")

	err = rs.WriteISR(ctx, t1, []int{0})
	require.ErrorIs(t, err, coordinator.ErrEpochChanged, "the master of epoch 1 must not write the ISR of epoch 2")
	isr, err = rs.ISR(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), isr.Epoch)
	require.Equal(t, []int{0, 1}, isr.InSync)
	require.NoError(t, rs.WriteISR(ctx, t2, []int{1}))
}

func TestSlaveRegistrationIsSelfHealingAndRegistersNoTopics(t *testing.T) {
	srv := zktest.Shared(t)
	ctx := replCtx(t)
	root := uniqueRoot(t)
	paths := coordinator.NewPaths(root)
	s := connect(t, srv.Addr)
	r := coordinator.NewSlaveRegistrar(s, paths, coordinator.BrokerInfo{ID: 7, URI: "meta://127.0.0.1:9"}, 2, nil)
	require.NoError(t, r.Start(ctx, topicsFixture()))
	raw := zktest.Connect(t, []string{srv.Addr}, 4*time.Second)
	data, st, err := raw.Get(root + "/brokers/ids/7/slave2")
	require.NoError(t, err)
	require.Equal(t, "meta://127.0.0.1:9", string(data))
	require.Equal(t, s.ID(), st.EphemeralOwner)
	for _, p := range []string{"/brokers/ids/7/master", "/brokers/topics-pub/orders/7-m", "/brokers/ids/7/master_config_checksum"} {
		ok, _, err := raw.Exists(root + p)
		require.NoError(t, err)
		require.False(t, ok, "a slave must not register %s", p)
	}
	members, err := coordinator.NewReplicaSet(s, paths, 7, nil).Members(ctx)
	require.NoError(t, err)
	require.Equal(t, map[int]string{2: "meta://127.0.0.1:9"}, members)

	// Another live slave with the same slaveId is a configuration error.
	other := connect(t, srv.Addr)
	err = coordinator.NewSlaveRegistrar(other, paths, coordinator.BrokerInfo{ID: 7, URI: "meta://10.0.0.1:9"}, 2, nil).Start(ctx, nil)
	require.ErrorIs(t, err, coordinator.ErrBrokerIDTaken)

	old := s.ID()
	expire(t, srv.Addr, s)
	require.Eventually(t, func() bool {
		_, st, err := raw.Get(root + "/brokers/ids/7/slave2")
		return err == nil && st.EphemeralOwner == s.ID() && s.ID() != old
	}, 20*time.Second, 20*time.Millisecond, "slave2 re-registered by the new session")
	require.NoError(t, r.Close(ctx))
	ok, _, err := raw.Exists(root + "/brokers/ids/7/slave2")
	require.NoError(t, err)
	require.False(t, ok, "deregistered on Close")
}

// replMember is one test participant of a replica set: its own session, its
// ReplicaSet view and its slave registration.
type replMember struct {
	id int
	s  *zkrecipes.Session
	rs *coordinator.ReplicaSet
}

func newMember(t *testing.T, addr string, paths coordinator.Paths, id int, register bool) replMember {
	t.Helper()
	s := connect(t, addr)
	m := replMember{id: id, s: s, rs: coordinator.NewReplicaSet(s, paths, 5, nil)}
	if register {
		r := coordinator.NewSlaveRegistrar(s, paths, coordinator.BrokerInfo{ID: 5, URI: uriOf(id)}, id, nil)
		require.NoError(t, r.Start(replCtx(t), nil))
		t.Cleanup(func() { _ = r.Close(context.Background()) })
	}
	return m
}

func uriOf(id int) string { return "meta://127.0.0.1:" + string(rune('0'+id)) + "000" }

type campaignResult struct {
	m    replMember
	lead *coordinator.Leadership
	err  error
}

func campaign(ctx context.Context, m replMember, logEnd int64, grace time.Duration, out chan<- campaignResult) {
	lead, err := m.rs.Campaign(ctx, coordinator.Candidate{Member: m.id, LogEnd: logEnd}, coordinator.CampaignOptions{Grace: grace})
	out <- campaignResult{m: m, lead: lead, err: err}
}

// TestCampaignLongestLogWinsWhateverTheOrder: the shortest log heads the
// line, waits for the other live in-sync members, sees a longer log and
// yields; the middle one yields too; the longest wins, and nobody else wins
// while it holds the election.
func TestCampaignLongestLogWinsWhateverTheOrder(t *testing.T) {
	srv := zktest.Shared(t)
	ctx := replCtx(t)
	paths := coordinator.NewPaths(uniqueRoot(t))
	admin := newMember(t, srv.Addr, paths, 0, false)
	term, err := admin.rs.Bootstrap(ctx, 0, uriOf(0))
	require.NoError(t, err)
	require.NoError(t, admin.rs.WriteISR(ctx, term, []int{0, 1, 2, 3}))

	ms := []replMember{newMember(t, srv.Addr, paths, 1, true), newMember(t, srv.Addr, paths, 2, true), newMember(t, srv.Addr, paths, 3, true)}
	logEnds := map[int]int64{1: 10, 2: 30, 3: 20}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make(chan campaignResult, 3)
	// Member 1 (shortest) first, so it heads the line; a long grace, so the
	// decision never depends on timing: all three are live and in sync.
	go campaign(cctx, ms[0], logEnds[1], 30*time.Second, out)
	require.Eventually(t, func() bool {
		c, err := admin.rs.Candidates(ctx)
		return err == nil && len(c) == 1
	}, 10*time.Second, 10*time.Millisecond)
	go campaign(cctx, ms[2], logEnds[3], 30*time.Second, out)
	go campaign(cctx, ms[1], logEnds[2], 30*time.Second, out)

	var won campaignResult
	select {
	case won = <-out:
	case <-ctx.Done():
		t.Fatal("nobody won the election")
	}
	require.NoError(t, won.err)
	require.Equal(t, 2, won.m.id, "the longest log must win")
	require.ElementsMatch(t, []int{1, 2, 3}, memberIDs(won.lead.Candidates))

	// While the winner holds the election, the others stay in line.
	c, err := admin.rs.Candidates(ctx)
	require.NoError(t, err)
	require.Len(t, c, 3)
	select {
	case r := <-out:
		t.Fatalf("member %d won while member 2 holds the election (err %v)", r.m.id, r.err)
	default:
	}
	cancel()
	for range 2 {
		r := <-out
		require.ErrorIs(t, r.err, context.Canceled)
	}
	require.NoError(t, won.lead.Close(ctx))
}

func memberIDs(cs []coordinator.Candidate) []int {
	var out []int
	for _, c := range cs {
		out = append(out, c.Member)
	}
	return out
}

// TestMasterSessionExpiryLosesMastership: the master of epoch 1 holds the
// election; a slave in the in-sync set cannot win until the master's session
// expires; then it wins, bumps the epoch, and every ISR write of the old
// master is refused.
func TestMasterSessionExpiryLosesMastership(t *testing.T) {
	srv := zktest.Shared(t)
	ctx := replCtx(t)
	paths := coordinator.NewPaths(uniqueRoot(t))
	m0 := newMember(t, srv.Addr, paths, 0, false)
	lead0, err := m0.rs.Campaign(ctx, coordinator.Candidate{Member: 0, LogEnd: 100}, coordinator.CampaignOptions{})
	require.NoError(t, err)
	term0, err := m0.rs.Bootstrap(ctx, 0, uriOf(0))
	require.NoError(t, err)
	require.NoError(t, m0.rs.WriteISR(ctx, term0, []int{0, 1}))

	m1 := newMember(t, srv.Addr, paths, 1, true)
	out := make(chan campaignResult, 1)
	go campaign(ctx, m1, 90, time.Second, out)
	require.Eventually(t, func() bool {
		c, err := m1.rs.Candidates(ctx)
		return err == nil && len(c) == 2
	}, 10*time.Second, 10*time.Millisecond)

	// Member 1 is in line behind the live master: it must not have won.
	select {
	case r := <-out:
		t.Fatalf("member 1 won while the master's session was alive (err %v)", r.err)
	default:
	}
	expire(t, srv.Addr, m0.s)
	var won campaignResult
	select {
	case won = <-out:
	case <-ctx.Done():
		t.Fatal("member 1 never won after the master's session expired")
	}
	require.NoError(t, won.err)
	select {
	case <-lead0.Lost():
	case <-ctx.Done():
		t.Fatal("the old master never noticed it lost the election")
	}

	e, isr, err := m1.rs.State(ctx)
	require.NoError(t, err)
	require.True(t, isr.Contains(1))
	term1, err := m1.rs.BumpEpoch(ctx, e, 1, uriOf(1), []int{1})
	require.NoError(t, err)
	require.Equal(t, int64(2), term1.Epoch.Epoch)

	require.NoError(t, m0.s.WaitConnected(ctx))
	err = m0.rs.WriteISR(ctx, term0, []int{0})
	require.True(t, errors.Is(err, coordinator.ErrEpochChanged), "old master's ISR write: %v", err)
	_, err = m0.rs.BumpEpoch(ctx, term0.Epoch, 0, uriOf(0), []int{0})
	require.ErrorIs(t, err, coordinator.ErrEpochChanged)
	got, err := m0.rs.Epoch(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, got.Master)
	require.NoError(t, won.lead.Close(ctx))
	_ = lead0.Close(ctx)
}

// TestCampaignChosenCandidateDoesNotYield: the target of a planned
// switchover wins when it heads the line, although a longer log waits
// behind it; without Chosen it would yield.
func TestCampaignChosenCandidateDoesNotYield(t *testing.T) {
	srv := zktest.Shared(t)
	ctx := replCtx(t)
	paths := coordinator.NewPaths(uniqueRoot(t))
	holder := newMember(t, srv.Addr, paths, 0, false)
	lead0, err := holder.rs.Campaign(ctx, coordinator.Candidate{Member: 0, LogEnd: 50}, coordinator.CampaignOptions{})
	require.NoError(t, err)
	term, err := holder.rs.Bootstrap(ctx, 0, uriOf(0))
	require.NoError(t, err)
	require.NoError(t, holder.rs.WriteISR(ctx, term, []int{0, 1, 2}))

	m1, m2 := newMember(t, srv.Addr, paths, 1, true), newMember(t, srv.Addr, paths, 2, true)
	out := make(chan campaignResult, 2)
	go func() {
		lead, err := m1.rs.Campaign(ctx, coordinator.Candidate{Member: 1, LogEnd: 10}, coordinator.CampaignOptions{Chosen: true})
		out <- campaignResult{m: m1, lead: lead, err: err}
	}()
	require.Eventually(t, func() bool {
		c, err := holder.rs.Candidates(ctx)
		return err == nil && len(c) == 2
	}, 10*time.Second, 10*time.Millisecond)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go campaign(cctx, m2, 30, 30*time.Second, out)
	require.Eventually(t, func() bool {
		c, err := holder.rs.Candidates(ctx)
		return err == nil && len(c) == 3
	}, 10*time.Second, 10*time.Millisecond)

	require.NoError(t, lead0.Close(ctx))
	won := <-out
	require.NoError(t, won.err)
	require.Equal(t, 1, won.m.id, "the chosen member wins although member 2 has a longer log")
	cancel()
	require.ErrorIs(t, (<-out).err, context.Canceled)
	require.NoError(t, won.lead.Close(ctx))
}
