package broker_test

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
	"github.com/stretchr/testify/require"
)

// A consumer of the master reads only up to the high watermark: a message
// the master has on disk but its in-sync sync slave has not acknowledged
// (so a failover could take it back) is not served — not by a get, an
// offset request or `stats offsets` — and a long poll waiting for it
// returns it as soon as the slave acknowledges. Without the watermark the
// plain get right after the put returns the unacknowledged message.
func TestConsumersReadOnlyUpToTheHighWatermark(t *testing.T) {
	m := startMember(t, "", broker.ReplicationOptions{MinSyncSlaves: 1, MaxDelay: 2 * time.Minute})
	px := newTCPProxy(t, m.Addr())
	startMember(t, "", broker.ReplicationOptions{MemberID: 1, MasterAddr: px.Addr()})
	mc := dialT(t, m.Addr())
	waitInSync(t, mc, 1, true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	_, err := put(ctx, mc, 0, []byte("acknowledged"))
	require.NoError(t, err)
	p, err := m.Store().Partition("rt", 0, false)
	require.NoError(t, err)
	hw := p.End() // acknowledged: the slave has all of it

	px.Freeze() // the slave neither receives nor acknowledges anything
	held := make(chan error, 1)
	var acked ackedPut
	go func() {
		var err error
		acked, err = put(ctx, dialT(t, m.Addr()), 0, []byte("not yet replicated"))
		held <- err
	}()
	require.Eventually(t, func() bool { return p.End() > hw }, 30*time.Second, time.Millisecond,
		"the master has the held put on disk")

	cc := dialT(t, m.Addr())
	get := func(offset int64, waitMs int32) conn.Reply {
		r, err := cc.Get(ctx, &protocol.GetRequest{Topic: "rt", Group: "g", Partition: 0, Offset: offset, MaxSize: 1 << 16, MaxWaitMs: waitMs})
		require.NoError(t, err)
		return r
	}
	r := get(hw, 0)
	require.Equal(t, protocol.VerbResult, r.Verb, "a get at the watermark returned data the slave does not have: %q", r.Body)
	require.Equal(t, int32(protocol.CodeNotFound), r.Code)
	r = get(0, 0)
	require.Equal(t, protocol.VerbValue, r.Verb)
	require.Len(t, r.Body, int(hw), "a get from 0 returns exactly the acknowledged messages")
	off, err := cc.Offset(ctx, &protocol.OffsetRequest{Topic: "rt", Group: "g", Partition: 0, Offset: 1 << 40})
	require.NoError(t, err)
	require.Equal(t, hw, off, "offset request")
	body, err := cc.StatsBody(ctx, "offsets")
	require.NoError(t, err)
	require.Contains(t, string(body), "rt part 0 min_offset 0 max_offset "+strconv.FormatInt(hw, 10)+"\r\n")
	select {
	case err := <-held:
		t.Fatalf("put answered while the slave was frozen: %v", err)
	default:
	}

	var thawed atomic.Bool
	polled := make(chan conn.Reply, 1)
	go func() {
		pc := dialT(t, m.Addr())
		r, err := pc.Get(ctx, &protocol.GetRequest{Topic: "rt", Group: "g", Partition: 0, Offset: hw, MaxSize: 1 << 16, MaxWaitMs: 60000})
		if err != nil {
			t.Error(err)
		}
		if r.Verb == protocol.VerbValue && !thawed.Load() {
			t.Errorf("long poll returned %q before the slave acknowledged it", r.Body)
		}
		polled <- r
	}()
	require.Eventually(t, func() bool { return m.LongPollParked("rt", 0) }, 30*time.Second, time.Millisecond)
	thawed.Store(true)
	px.Thaw()
	require.NoError(t, <-held)
	require.Equal(t, hw, acked.offset)
	r = <-polled
	require.Equal(t, protocol.VerbValue, r.Verb, "long poll: code %d %q", r.Code, r.Body)
	require.True(t, strings.Contains(string(r.Body), "not yet replicated"))
}
