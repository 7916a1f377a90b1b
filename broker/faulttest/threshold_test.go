package faulttest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// seenLog is every message a consumer was served, by offset.
type seenLog map[int64]stored

// add records the messages of a value reply to a get at offset from.
func (s seenLog) add(t *testing.T, from int64, rep conn.Reply) {
	t.Helper()
	it := protocol.NewMessageIterator(rep.Body)
	for it.Next() {
		m := it.Message()
		s[from+m.Offset] = stored{offset: from + m.Offset, id: m.ID, payload: string(m.Data)}
	}
	require.NoError(t, it.Err(), "a corrupt message served at offset %d", from)
}

// requireNothingServed gets part 0 at offset (plain, or long-poll when wait
// > 0) and fails the test when the broker serves anything there.
func requireNothingServed(t *testing.T, c *conn.Conn, offset int64, wait time.Duration, after string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait+15*time.Second)
	defer cancel()
	rep, err := c.Get(ctx, &protocol.GetRequest{Topic: topic, Group: "audit", Offset: offset, MaxSize: 1 << 20, MaxWaitMs: int32(wait.Milliseconds())})
	require.NoError(t, err, "get at offset %d", offset)
	if rep.Verb == protocol.VerbValue {
		t.Fatalf("SERVED UNSYNCED DATA: after %s, a get (max wait %v) at offset %d returned %d bytes before any fsync covered them",
			after, wait, offset, len(rep.Body))
	}
	require.EqualValues(t, protocol.CodeNotFound, rep.Code, "get at offset %d after %s: %s", offset, after, rep.Body)
}

// TestBinaryThresholdModeServesOnlyFsyncedData: in threshold mode a put is
// answered after its write and before its fsync, which here comes only
// with the flushThreshold-th unsynced message (the interval is ten
// minutes). Until then neither a plain get nor a long-poll get — one parked
// before the puts, one sent after them — may serve the acknowledged puts;
// the put that triggers the fsync wakes the parked long-poll. After more
// unsynced puts and kill -9, everything a consumer was ever served is in the
// recovered log at the same offset (and, the page cache surviving a process
// kill, every acknowledged put too).
func TestBinaryThresholdModeServesOnlyFsyncedData(t *testing.T) {
	t.Parallel()
	const threshold = 8
	b := startBroker(t, config{flushThreshold: threshold, extra: []string{"unflushInterval=600000"}})
	l := newLedger()
	seen := seenLog{}

	cons := dial(t, b.addr)
	parked := make(chan conn.Reply, 1)
	parkedErr := make(chan error, 1)
	require.NoError(t, cons.Start(conn.ProtocolRequest(&protocol.GetRequest{
		Topic: topic, Group: "audit", Offset: 0, MaxSize: 1 << 20, MaxWaitMs: 120000,
	}), handlerFunc(func(rep *protocol.Reply, err error) {
		if err != nil {
			parkedErr <- err
			return
		}
		parked <- conn.Reply{Verb: rep.Verb, Code: rep.Code, Body: append([]byte(nil), rep.Body...)}
	})))

	prod := dial(t, b.addr)
	for i := 0; i < threshold-1; i++ {
		putSync(t, prod, l, 0, fmt.Sprintf("thr-p0-%d-x", i))
		requireNothingServed(t, cons, 0, 0, fmt.Sprintf("%d acknowledged unsynced puts", i+1))
	}
	// The broker has 1.5 s to (wrongly) serve the unsynced puts to this
	// long-poll and to wake the parked one.
	requireNothingServed(t, cons, 0, 1500*time.Millisecond, fmt.Sprintf("%d acknowledged unsynced puts", threshold-1))
	select {
	case rep := <-parked:
		t.Fatalf("SERVED UNSYNCED DATA: the long-poll parked before the puts was answered (%d, %d bytes) before any fsync", rep.Code, len(rep.Body))
	case err := <-parkedErr:
		t.Fatalf("the parked long-poll failed: %v", err)
	default:
	}

	putSync(t, prod, l, 0, fmt.Sprintf("thr-p0-%d-x", threshold-1)) // the threshold-th: fsync
	select {
	case rep := <-parked:
		require.Equal(t, protocol.VerbValue, rep.Verb, "the parked long-poll after the fsync: %d %s", rep.Code, rep.Body)
		seen.add(t, 0, rep)
	case err := <-parkedErr:
		t.Fatalf("the parked long-poll failed: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the fsync of the threshold-th put never woke the parked long-poll")
	}
	r := readPartition(cons, 0, 0, false)
	require.True(t, r.clean(), "read partition 0 after the fsync: %s", r)
	require.Len(t, r.msgs, threshold, "every put is served once the fsync covers it")
	for _, m := range r.msgs {
		seen[m.offset] = m
	}

	for i := threshold; i < 2*threshold-1; i++ { // unsynced again, then kill -9
		putSync(t, prod, l, 0, fmt.Sprintf("thr-p0-%d-x", i))
		requireNothingServed(t, cons, r.end, 0, fmt.Sprintf("%d acknowledged unsynced puts after the fsync", i-threshold+1))
	}
	b.kill9()

	b = b.restart()
	got := readAll(t, b.addr, false)
	recovered := map[int64]stored{}
	for _, m := range got[0].msgs {
		recovered[m.offset] = m
	}
	for off, m := range seen {
		if rm, ok := recovered[off]; !ok || rm != m {
			t.Errorf("SEEN BUT LOST: a consumer was served %q (id %d) at offset %d; after kill -9 the log has %+v there", m.payload, m.id, off, rm)
		}
	}
	l.audit(t, got, auditOpts{exact: true})
	b.requireAlive("restart after kill -9 in threshold mode")
}
