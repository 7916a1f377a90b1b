package broker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/broker/replica"
	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
	"github.com/stretchr/testify/require"
)

// With a sync slave, every put the master acknowledges is already on the
// slave, at the same offset with the same id and bytes; at the end the
// logs are byte-identical. Without the sync gate the check right after
// each acknowledgement fails (the slave copies asynchronously).
func TestSyncSlaveHasEveryAckedMessage(t *testing.T) {
	m := startMember(t, "", broker.ReplicationOptions{MinSyncSlaves: 1, MaxDelay: time.Minute})
	s := startMember(t, "", broker.ReplicationOptions{MemberID: 1, MasterAddr: m.Addr()})
	mc := dialT(t, m.Addr())
	waitInSync(t, mc, 1, true)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	var all []ackedPut
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := conn.Dial(ctx, m.Addr(), conn.Options{})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for i := 0; i < 50; i++ {
				a, err := put(ctx, c, int32(i%2), []byte(fmt.Sprintf("w%d-m%d", w, i)))
				if err != nil {
					t.Error(err)
					return
				}
				requireHas(t, s, a) // on the slave as soon as it is acknowledged
				mu.Lock()
				all = append(all, a)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Len(t, all, 200)
	requireSameLogs(t, m, s)
	require.Contains(t, slaveLine(t, mc, 1), "mode sync in_sync true")
}

// A slave refuses puts, naming its master, and refuses consumers' gets
// unless serveReads is set.
func TestSlaveRefusesPutsAndReads(t *testing.T) {
	m := startMember(t, "", broker.ReplicationOptions{})
	s := startMember(t, "", broker.ReplicationOptions{MemberID: 2, MasterAddr: m.Addr()})
	ctx := context.Background()
	_, err := put(ctx, dialT(t, m.Addr()), 0, []byte("x"))
	require.NoError(t, err)
	sc := dialT(t, s.Addr())
	_, err = put(ctx, sc, 0, []byte("y"))
	var se *conn.ServerError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, int32(protocol.CodeForbidden), se.Code)
	require.Contains(t, se.Msg, "this broker is a slave of brokerId 5: send to the master at meta://"+m.Addr())
	rep, err := sc.Get(ctx, &protocol.GetRequest{Topic: "rt", Group: "g", Partition: 0, Offset: 0, MaxSize: 1024})
	require.NoError(t, err)
	require.Equal(t, int32(protocol.CodeForbidden), rep.Code, "%s", rep.Body)
	require.Contains(t, string(rep.Body), "serveReads=false")

	r := startMember(t, "", broker.ReplicationOptions{MemberID: 3, MasterAddr: m.Addr(), ServeReads: true})
	rc := dialT(t, r.Addr())
	require.Eventually(t, func() bool {
		rep, err := rc.Get(ctx, &protocol.GetRequest{Topic: "rt", Group: "g", Partition: 0, Offset: 0, MaxSize: 1024})
		return err == nil && rep.Verb == protocol.VerbValue
	}, 30*time.Second, 10*time.Millisecond)
}

// A sync slave cut off by the network leaves the in-sync set after
// slaveMaxDelayInMills; the master refuses puts while fewer than
// minSyncSlaves are in sync (503, not enough in-sync replicas); after the
// network heals the slave catches up and rejoins, puts succeed again, and
// every acknowledged message is on the slave.
func TestCutOffSlaveLeavesInSyncSetAndHeals(t *testing.T) {
	m := startMember(t, "", broker.ReplicationOptions{MinSyncSlaves: 1, MaxDelay: time.Second})
	px := newTCPProxy(t, m.Addr())
	s := startMember(t, "", broker.ReplicationOptions{MemberID: 1, MasterAddr: px.Addr()})
	mc := dialT(t, m.Addr())
	waitInSync(t, mc, 1, true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var all []ackedPut
	for i := 0; i < 20; i++ {
		a, err := put(ctx, mc, int32(i%2), []byte(fmt.Sprintf("before-%d", i)))
		require.NoError(t, err)
		all = append(all, a)
	}

	px.Cut()
	_, err := put(ctx, mc, 0, []byte("during-cut"))
	var se *conn.ServerError
	require.True(t, errors.As(err, &se), "put during the cut: %v", err)
	require.Equal(t, int32(protocol.CodeUnavailable), se.Code)
	require.Equal(t, "not enough in-sync replicas (have 0, need 1)", se.Msg)
	waitInSync(t, mc, 1, false)
	_, err = put(ctx, mc, 1, []byte("still-cut"))
	require.ErrorAs(t, err, &se)
	require.Contains(t, se.Msg, "not enough in-sync replicas")

	px.Heal()
	waitInSync(t, mc, 1, true)
	for i := 0; i < 20; i++ {
		// A loaded machine may make the slave lag past the limit again:
		// a refusal is retriable, only acknowledged puts count.
		a, err := put(ctx, mc, int32(i%2), []byte(fmt.Sprintf("after-%d", i)))
		for errors.As(err, &se) && se.Code == protocol.CodeUnavailable && ctx.Err() == nil {
			a, err = put(ctx, mc, int32(i%2), []byte(fmt.Sprintf("after-%d", i)))
		}
		require.NoError(t, err)
		requireHas(t, s, a)
		all = append(all, a)
	}
	for _, a := range all {
		requireHas(t, s, a)
	}
	require.Eventually(t, func() bool {
		for _, p := range m.Store().Partitions() {
			sp, err := s.Store().Partition(p.Topic(), p.ID(), false)
			if err != nil || sp.End() != p.End() {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond)
	requireSameLogs(t, m, s)
}

// A slave whose data directory was wiped copies the master's whole log
// again, byte for byte; a restarted slave resumes from its own end.
func TestWipedSlaveResyncs(t *testing.T) {
	m := startMember(t, "", broker.ReplicationOptions{})
	mc := dialT(t, m.Addr())
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		_, err := put(ctx, mc, int32(i%2), []byte(fmt.Sprintf("msg-%d", i)))
		require.NoError(t, err)
	}
	dir := t.TempDir()
	caughtUp := func(s *broker.Broker) func() bool {
		return func() bool {
			for _, p := range m.Store().Partitions() {
				sp, err := s.Store().Partition(p.Topic(), p.ID(), false)
				if err != nil || sp.End() != p.End() {
					return false
				}
			}
			return true
		}
	}
	s := startMember(t, dir, broker.ReplicationOptions{MemberID: 1, MasterAddr: m.Addr()})
	require.Eventually(t, caughtUp(s), 30*time.Second, 10*time.Millisecond)
	requireSameLogs(t, m, s)
	require.NoError(t, s.Shutdown(ctx))

	for i := 0; i < 10; i++ { // more while the slave is down: it resumes
		_, err := put(ctx, mc, int32(i%2), []byte(fmt.Sprintf("more-%d", i)))
		require.NoError(t, err)
	}
	s = startMember(t, dir, broker.ReplicationOptions{MemberID: 1, MasterAddr: m.Addr()})
	require.Eventually(t, caughtUp(s), 30*time.Second, 10*time.Millisecond)
	requireSameLogs(t, m, s)
	require.NoError(t, s.Shutdown(ctx))

	require.NoError(t, os.RemoveAll(dir))
	s = startMember(t, dir, broker.ReplicationOptions{MemberID: 1, MasterAddr: m.Addr()})
	require.Eventually(t, caughtUp(s), 30*time.Second, 10*time.Millisecond)
	requireSameLogs(t, m, s)
}

// An async slave never delays a put: cut off (with a lag limit far beyond
// the test), the master still acknowledges at once, and it is never in
// the in-sync set.
func TestAsyncSlaveNeverDelaysPuts(t *testing.T) {
	m := startMember(t, "", broker.ReplicationOptions{MaxDelay: time.Hour})
	px := newTCPProxy(t, m.Addr())
	startMember(t, "", broker.ReplicationOptions{MemberID: 1, Async: true, MasterAddr: px.Addr()})
	mc := dialT(t, m.Addr())
	require.Eventually(t, func() bool { return slaveLine(t, mc, 1) != "" }, 30*time.Second, 10*time.Millisecond)
	require.Contains(t, slaveLine(t, mc, 1), "mode async in_sync false")
	px.Cut()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		_, err := put(ctx, mc, int32(i%2), []byte(fmt.Sprintf("async-%d", i)))
		require.NoError(t, err, "put %d with the async slave cut off", i)
	}
	require.Contains(t, slaveLine(t, mc, 1), "in_sync false")
}

// A transaction's commit is answered only once the in-sync sync slave has
// its messages (the sync gate covers commits too).
func TestSyncSlaveHasCommittedTransaction(t *testing.T) {
	m := startMember(t, "", broker.ReplicationOptions{MinSyncSlaves: 1, MaxDelay: time.Minute})
	s := startMember(t, "", broker.ReplicationOptions{MemberID: 1, MasterAddr: m.Addr()})
	waitInSync(t, dialT(t, m.Addr()), 1, true)
	c := brokertest.Dial(t, m.Addr())
	const key = "TX:sess:9"
	requireOK(t, txCall(t, c, txLine(key, "BEGIN", 1), 1))
	var ids []int64
	for i := 0; i < 3; i++ {
		r := txCall(t, c, txPutLine("rt", 0, fmt.Sprintf("tx-%d", i), key, 10+i), 10+i)
		requireOK(t, r)
		id, _, _ := putResult(t, r)
		ids = append(ids, id)
	}
	requireOK(t, txCall(t, c, txLine(key, "COMMIT_ONE_PHASE", 20), 20))
	off := int64(0)
	for i, id := range ids {
		data := []byte(fmt.Sprintf("tx-%d", i))
		requireHas(t, s, ackedPut{part: 0, offset: off, id: id, data: data})
		off += int64(20 + len(data))
	}
}

// A slave started before its master starts anyway (refusing puts) and
// follows once the master is up.
func TestSlaveStartsBeforeItsMaster(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	s := startMember(t, "", broker.ReplicationOptions{MemberID: 1, MasterAddr: addr})
	_, err = put(context.Background(), dialT(t, s.Addr()), 0, []byte("x"))
	require.ErrorContains(t, err, "this broker is a slave of brokerId 5")
	m := brokertest.Start(t, brokertest.Options{BrokerID: 5, Partitions: 2, Modify: func(o *broker.Options) {
		o.ListenAddr = addr
	}})
	a, err := put(context.Background(), dialT(t, m.Addr()), 1, []byte("first"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		p, err := s.Store().Partition("rt", 1, false)
		return err == nil && p.End() > a.offset
	}, 30*time.Second, 10*time.Millisecond)
	requireHas(t, s, a)
}

// A topic that consumers may not read from (acceptSubscribe=false) is
// replicated all the same: the sync gate would otherwise hold its puts
// until the slave drops out of the in-sync set.
func TestSlaveCopiesTopicsClosedToConsumers(t *testing.T) {
	m := brokertest.Start(t, brokertest.Options{BrokerID: 5, Partitions: 2, Modify: func(o *broker.Options) {
		o.Replication = broker.ReplicationOptions{MinSyncSlaves: 1, MaxDelay: time.Hour}
		o.Topic = func(string) (broker.TopicConfig, bool) {
			return broker.TopicConfig{NumPartitions: 2, AcceptPublish: true, AcceptSubscribe: false}, true
		}
	}})
	s := startMember(t, "", broker.ReplicationOptions{MemberID: 1, MasterAddr: m.Addr()})
	mc := dialT(t, m.Addr())
	waitInSync(t, mc, 1, true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := put(ctx, mc, 1, []byte("no-subscribers"))
	require.NoError(t, err)
	requireHas(t, s, a)
}

// When the master starts a new term (Lead again), the followers' streams
// of the earlier term are refused, so they shake hands again and count for
// the new term's in-sync set.
func TestFollowersReattachOnANewTerm(t *testing.T) {
	m := startMember(t, "", broker.ReplicationOptions{MinSyncSlaves: 1, MaxDelay: time.Minute})
	s := startMember(t, "", broker.ReplicationOptions{MemberID: 1, MasterAddr: m.Addr()})
	mc := dialT(t, m.Addr())
	waitInSync(t, mc, 1, true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, m.Lead(ctx, 3))
	waitInSync(t, mc, 1, true)
	a, err := put(ctx, mc, 0, []byte("new-term"))
	require.NoError(t, err)
	requireHas(t, s, a)
}

// A slave whose topics are in MetaQ's threshold flush mode still
// acknowledges only what it fsynced, and keeps following (its next fetch
// starts at its durable end, where the next raw append fits).
func TestSlaveInThresholdFlushMode(t *testing.T) {
	m := startMember(t, "", broker.ReplicationOptions{MinSyncSlaves: 1, MaxDelay: time.Minute})
	s := brokertest.Start(t, brokertest.Options{BrokerID: 5, Partitions: 2, Modify: func(o *broker.Options) {
		o.Replication = broker.ReplicationOptions{MemberID: 1, MasterAddr: m.Addr(), FollowerMaxWait: 100 * time.Millisecond}
		o.Store.Flush = store.FlushPolicy{Mode: store.Threshold, UnflushThreshold: 1000, UnflushInterval: time.Hour}
	}})
	mc := dialT(t, m.Addr())
	waitInSync(t, mc, 1, true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < 10; i++ {
		a, err := put(ctx, mc, 0, []byte(fmt.Sprintf("threshold-%d", i)))
		require.NoError(t, err)
		requireHas(t, s, a)
	}
}

// A sync slave whose fetches stay parked at the end for longer than
// slaveMaxDelayInMills (here 3 s; the slave's long poll is the default 20 s)
// stays in sync when the next put arrives, even while that put's
// replication is held up (a frozen link, for less than the limit): its lag
// counts from the put, not from its last fetch. Before, the master counted
// from the last fetch and dropped the slave at its next lag check (the
// put was then refused: not enough in-sync replicas). After the link
// thaws the put is acknowledged and the slave has it.
func TestIdleSyncSlaveStaysInSyncPastMaxDelay(t *testing.T) {
	const maxDelay = 3 * time.Second
	m := startMember(t, "", broker.ReplicationOptions{MinSyncSlaves: 1, MaxDelay: maxDelay})
	px := newTCPProxy(t, m.Addr())
	s := startMember(t, "", broker.ReplicationOptions{MemberID: 1, MasterAddr: px.Addr(), FollowerMaxWait: replica.DefaultFollowerMaxWait})
	mc := dialT(t, m.Addr())
	inSync := func() bool { return strings.Contains(slaveLine(t, mc, 1), "in_sync true") }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	waitInSync(t, mc, 1, true)
	a, err := put(ctx, mc, 0, []byte("first"))
	require.NoError(t, err)
	requireHas(t, s, a)

	// Idle for longer than MaxDelay: the slave's gets stay parked.
	require.Never(t, func() bool { return !inSync() }, maxDelay+500*time.Millisecond, 50*time.Millisecond,
		"an idle caught-up slave left the in-sync set")
	px.Freeze()
	res := make(chan error, 1)
	var held ackedPut
	go func() {
		var err error
		held, err = put(ctx, mc, 0, []byte("after-idle"))
		res <- err
	}()
	require.Never(t, func() bool { return !inSync() }, time.Second, 50*time.Millisecond,
		"the slave left the in-sync set 1 s into the first put after idling (limit 3 s)")
	px.Thaw()
	require.NoError(t, <-res, "the put held while the link was frozen")
	requireHas(t, s, held)
	require.True(t, inSync())
}

// A follower's stream is sent the partition list when the set (or the
// epoch history) changed, and every tenth read besides; the reads in
// between carry only `partitions_unchanged <count>`. A partition created
// between two reads is in the next one.
func TestFollowerStreamGetsThePartitionListOnlyWhenItChanged(t *testing.T) {
	m := startMember(t, "", broker.ReplicationOptions{MaxDelay: time.Minute})
	mc := dialT(t, m.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := put(ctx, mc, 0, []byte("x"))
	require.NoError(t, err)
	src, err := replica.DialConn(m.Addr(), conn.Options{})(ctx)
	require.NoError(t, err)
	defer src.Close()
	require.NoError(t, src.Handshake(ctx, protocol.ReplicateRequest{BrokerID: 5, MemberID: 1, Sync: false}))
	read := func() []replica.PartitionEnd {
		t.Helper()
		st, err := src.State(ctx)
		require.NoError(t, err)
		return st.Partitions
	}
	first := read()
	require.NotEmpty(t, first, "the stream's first read has the list")
	for i := 2; i <= 10; i++ {
		require.Empty(t, read(), "read %d: nothing changed", i)
	}
	require.Len(t, read(), len(first), "ten reads after the last list, the whole list again")
	require.Empty(t, read())

	_, err = put(ctx, mc, 0, []byte("y")) // a new end, same set: not sent
	require.NoError(t, err)
	require.Empty(t, read())
	c := dialT(t, m.Addr()) // a new partition: sent at the next read
	_, err = c.Put(ctx, &protocol.PutRequest{Topic: "rt-new", Partition: 0, Checksum: protocol.Checksum([]byte("z")), Data: []byte("z")})
	require.NoError(t, err)
	got := read()
	require.Len(t, got, len(first)+1)
	require.True(t, slices.ContainsFunc(got, func(p replica.PartitionEnd) bool { return p.Topic == "rt-new" && p.Part == 0 }),
		"the new partition is in the list: %v", got)
	require.Empty(t, read())
}
