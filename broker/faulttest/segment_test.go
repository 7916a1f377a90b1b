package faulttest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// filled starts a broker with 64 KiB segments, puts msgs messages of about
// 540 bytes into partition 0 (so it has several closed segments: at least
// msgs × 540 / 64 KiB) and 20 into each other partition, and returns
// partition 0's segments.
func filled(t *testing.T, msgs int) (*proc, *ledger, []segment) {
	t.Helper()
	b := startBroker(t, config{})
	l := newLedger()
	c := dial(t, b.addr)
	fill(t, c, l, 0, "a", msgs, 500)
	for p := int32(1); p < parts; p++ {
		fill(t, c, l, p, "b", 20, 100)
	}
	_ = c.Close()
	segs := segments(t, b.partDir(0))
	require.GreaterOrEqual(t, int64(len(segs)), int64(msgs)*540/(64<<10), "partition 0 should span several segments: %s", describeSegments(segs))
	return b, l, segs
}

// others are the partitions a fault in partition 0 must not touch.
var others = []int32{1, 2, 3}

// requireOthersFine checks that partitions 1..3 read back complete and take
// new puts.
func requireOthersFine(t *testing.T, b *proc, l *ledger, label string) {
	t.Helper()
	c := dial(t, b.addr)
	for _, p := range others {
		putSync(t, c, l, p, fmt.Sprintf("%s-p%d-0", label, p))
	}
	l.audit(t, readAll(t, b.addr, false), auditOpts{only: others})
}

// prefixProblems checks messages read from part against the ledger: each
// must be the acknowledged message at its offset.
func (l *ledger) prefixProblems(part int32, msgs []stored) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range msgs {
		a, ok := l.acked[m.payload]
		if !ok || a.part != part || a.offset != m.offset || a.id != m.id {
			out = append(out, fmt.Sprintf("offset %d: %q (%+v)", m.offset, trunc(m.payload), a))
		}
	}
	return out
}

// TestBinaryTruncateClosedSegmentUnderReader cuts a closed segment of
// partition 0 to half its size while a reader reads the partition over and
// over: the broker process must survive (a shared mapping of the file
// raises SIGBUS on the lost pages), reads of partition 0 must answer an
// error rather than data from the lost range, /healthz must name the failed
// partition, and the other partitions must keep working.
func TestBinaryTruncateClosedSegmentUnderReader(t *testing.T) {
	t.Parallel()
	b, l, segs := filled(t, 600)
	victim := segs[1]

	// The reader reads the partition from 0, then gets every message of the
	// victim segment on its own, as consumers at different positions do:
	// after the cut, those in the lost half lie on pages past the new end
	// of the file.
	starts := l.ackedIn(0, victim.base, victim.base+victim.size)
	var passes atomic.Int64
	var lastErr atomic.Value // of a get: a transport failure, not an error reply
	stop := make(chan struct{})
	var wg sync.WaitGroup
	c := dial(t, b.addr)
	var redials atomic.Int64
	wg.Add(1)
	go func() { // the reader, until stop or the broker is gone
		defer wg.Done()
		defer func() { _ = c.Close() }()
		for {
			if r := readPartition(c, 0, 0, false); r.err != nil {
				lastErr.Store(r.err.Error())
			}
			for _, a := range starts {
				select {
				case <-stop:
					return
				case <-c.Done():
					// A reply written straight from the mapping while the file
					// shrinks fails in the kernel (EFAULT) and costs that
					// connection, never the process: reconnect as a consumer
					// would, and go on.
					lastErr.Store(fmt.Sprintf("connection ended: %v", c.Err()))
					if !b.alive() {
						return
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					nc, err := conn.Dial(ctx, b.addr, conn.Options{})
					cancel()
					if err != nil {
						lastErr.Store(fmt.Sprintf("redial: %v", err))
						return
					}
					_ = c.Close()
					c = nc
					redials.Add(1)
				default:
				}
				if _, err := get(c, 0, a.offset, 1<<20); err != nil {
					lastErr.Store(fmt.Sprintf("get offset %d: %v", a.offset, err))
				}
			}
			passes.Add(1)
		}
	}()
	readerDone := func(n int64) func() (bool, string) {
		return func() (bool, string) {
			return passes.Load() >= n || !b.alive(), fmt.Sprintf("reader: %d passes of %d gets (want %d), last error %v", passes.Load(), len(starts)+1, n, lastErr.Load())
		}
	}
	eventually(t, 60*time.Second, readerDone(2))
	b.requireAlive("reading partition 0")
	require.NoError(t, os.Truncate(victim.path, victim.size/2))
	eventually(t, 60*time.Second, readerDone(passes.Load()+3))
	close(stop)
	wg.Wait()
	t.Logf("the reader reconnected %d times after the truncation", redials.Load())
	b.requireAlive(fmt.Sprintf("truncating closed segment %s of partition 0 from %d to %d bytes under a reader", victim.path, victim.size, victim.size/2))

	rc := dial(t, b.addr)
	r := readPartition(rc, 0, 0, false)
	require.NoError(t, r.err, "reading partition 0 after the truncation")
	require.NotEqual(t, int32(protocol.CodeNotFound), r.code,
		"reads of partition 0 went to the end without an error although segment %d lost half its bytes: %s", victim.base, r)
	require.Empty(t, l.prefixProblems(0, r.msgs), "partition 0 served messages that are not the acknowledged ones")
	require.LessOrEqual(t, r.end, victim.base+victim.size/2, "partition 0 served data past the truncation point")
	t.Logf("partition 0 after the truncation: %s", r)
	b.requireAlive("reading the truncated partition")

	requireOthersFine(t, b, l, "trunc")
	eventually(t, 15*time.Second, func() (bool, string) {
		code, body, err := b.health()
		return err == nil && code != 200 && strings.Contains(body, topic+"-0"),
			fmt.Sprintf("/healthz answered %d %q (err %v); want a failure naming partition %s-0", code, trunc(body), err, topic)
	})
	b.requireAlive("the truncation fault")
}

// TestBinaryBitFlipInClosedSegment flips one bit in the payload of a message
// in a closed segment of partition 0 while the broker runs: a reader from
// offset 0 gets every message before it, then an error reply at exactly
// that message's offset — never the corrupt message; the other partitions
// are fine.
func TestBinaryBitFlipInClosedSegment(t *testing.T) {
	t.Parallel()
	b, l, segs := filled(t, 600)
	in := l.ackedIn(0, segs[1].base, segs[2].base)
	require.NotEmpty(t, in)
	bad := in[len(in)/2]
	payload := l.payloadAt(0, bad.offset)
	flipBit(t, segs[1].path, bad.offset-segs[1].base+protocol.MessageHeaderSize+int64(len(payload)/2), 3)

	c := dial(t, b.addr)
	r := readPartition(c, 0, 0, false)
	require.NoError(t, r.err, "the corrupt message at offset %d must never be delivered", bad.offset)
	require.Empty(t, l.prefixProblems(0, r.msgs), "partition 0 served messages that are not the acknowledged ones")
	before := l.ackedIn(0, 0, bad.offset)
	require.Len(t, r.msgs, len(before), "every message before the corrupt one (offset %d) must be served: %s", bad.offset, r)
	require.Equal(t, bad.offset, r.end, "the reader must stop exactly at the corrupt message: %s", r)
	require.NotEqual(t, int32(protocol.CodeNotFound), r.code, "the corrupt message must get an error reply, not 'no more messages': %s", r)
	t.Logf("partition 0 with a flipped bit at message offset %d: %s", bad.offset, r)

	next := in[len(in)/2+1].offset
	rep, err := get(c, 0, next, 1<<20)
	require.NoError(t, err)
	t.Logf("a get just past the corrupt message (offset %d) answers %v %d (%d bytes)", next, rep.Verb, rep.Code, len(rep.Body))
	b.requireAlive("reading a corrupt message")
	requireOthersFine(t, b, l, "flip")
}

// TestBinaryDeletedMiddleSegment is a retention gap: with the broker
// stopped, a middle segment of partition 0 is deleted. The broker must
// start, the other partitions must be complete, and partition 0 must serve
// every message from the segment after the gap on (a reader from offset 0
// follows 301 replies).
func TestBinaryDeletedMiddleSegment(t *testing.T) {
	t.Parallel()
	b, l, segs := filled(t, 600)
	b.term()
	gone, after := segs[2], segs[3]
	require.NoError(t, os.Remove(gone.path))
	_ = os.Remove(strings.TrimSuffix(gone.path, ".meta") + ".idx")

	b = b.restart()
	got := readAll(t, b.addr, true)
	t.Logf("partition 0 with segment %d deleted: %s", gone.base, got[0])
	l.audit(t, got, auditOpts{allowMissing: map[int32]func(int64) bool{
		0: func(off int64) bool { return off < after.base },
	}})
	served := 0
	for _, m := range got[0].msgs {
		if m.offset < gone.base {
			served++
		}
	}
	t.Logf("%d of %d messages before the gap are still served", served, len(l.ackedIn(0, 0, gone.base)))
	requireOthersFine(t, b, l, "gap")
	c := dial(t, b.addr)
	putSync(t, c, l, 0, "gap-p0-new")
	b.requireAlive("a deleted middle segment")
}

// TestBinaryGetInsideMessageMoves sends gets at offsets inside messages (in
// a closed and in the active segment): each must answer 301 with the start
// of the next message as its body.
func TestBinaryGetInsideMessageMoves(t *testing.T) {
	t.Parallel()
	b, l, segs := filled(t, 300)
	c := dial(t, b.addr)
	closed := l.ackedIn(0, segs[0].base, segs[1].base)
	active := l.ackedIn(0, segs[len(segs)-1].base, 1<<62)
	require.GreaterOrEqual(t, len(closed), 3)
	require.GreaterOrEqual(t, len(active), 3)
	for _, tc := range []struct {
		name      string
		msg, next ack
	}{
		{"closed segment", closed[1], closed[2]},
		{"active segment", active[0], active[1]},
	} {
		size := tc.next.offset - tc.msg.offset
		for _, delta := range []int64{1, protocol.MessageHeaderSize - 1, protocol.MessageHeaderSize, size / 2, size - 1} {
			off := tc.msg.offset + delta
			rep, err := get(c, 0, off, 1<<20)
			require.NoError(t, err)
			require.Equal(t, protocol.VerbResult, rep.Verb, "%s: get at offset %d (inside the message at %d) delivered data (%d bytes)", tc.name, off, tc.msg.offset, len(rep.Body))
			require.Equal(t, int32(protocol.CodeMoved), rep.Code, "%s: get at offset %d inside the message at %d: want 301 %d, got %d %q",
				tc.name, off, tc.msg.offset, tc.next.offset, rep.Code, rep.Body)
			require.Equal(t, fmt.Sprint(tc.next.offset), string(rep.Body), "%s: 301 for offset %d must name the next message's start", tc.name, off)
		}
	}
	b.requireAlive("gets inside messages")
	l.audit(t, readAll(t, b.addr, false), auditOpts{exact: true})
}
