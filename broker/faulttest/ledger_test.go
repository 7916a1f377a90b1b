package faulttest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// ack is where the broker said it stored a put.
type ack struct {
	part   int32
	offset int64
	id     int64
}

// ledger records every put sent and every put acknowledged, by payload
// (payloads are unique).
type ledger struct {
	mu    sync.Mutex       // guards the maps
	sent  map[string]int32 // payload → partition it was sent to
	acked map[string]ack
	codes map[int32]int // reply codes of puts
	nAck  atomic.Int64
}

func newLedger() *ledger {
	return &ledger{sent: map[string]int32{}, acked: map[string]ack{}, codes: map[int32]int{}}
}

func (l *ledger) send(payload string, part int32) {
	l.mu.Lock()
	l.sent[payload] = part
	l.mu.Unlock()
}

func (l *ledger) reply(payload string, rep *protocol.Reply) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.codes[rep.Code]++
	if rep.Code != protocol.CodeOK {
		return
	}
	id, part, off, err := protocol.ParsePutResult(rep.Body)
	if err == nil {
		l.acked[payload] = ack{part: part, offset: off, id: id}
		l.nAck.Add(1)
	}
}

// acknowledged records a put acknowledged through a client that chose the
// partition itself (sent with partition -1).
func (l *ledger) acknowledged(payload string, a ack) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.codes[0]++ // a success reported by the client (no reply code)
	l.acked[payload] = a
	l.nAck.Add(1)
}

// handlerFunc adapts a function to conn.Handler.
type handlerFunc func(*protocol.Reply, error)

func (f handlerFunc) HandleReply(rep *protocol.Reply, err error) { f(rep, err) }

func dial(t *testing.T, addr string) *conn.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := conn.Dial(ctx, addr, conn.Options{})
	require.NoError(t, err, "dial broker %s", addr)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func putReq(part int32, payload string) *protocol.PutRequest {
	data := []byte(payload)
	return &protocol.PutRequest{Topic: topic, Partition: part, Checksum: protocol.Checksum(data), Data: data}
}

// produce pipelines puts (window in flight) on one connection until stop
// closes or the connection ends, then waits for the replies still due.
// Payloads are "<label>-p<producer>-<seq>-<padding>"; the partition cycles
// through partsTo.
func produce(addr, label string, producer int, partsTo []int32, l *ledger, stop <-chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c, err := conn.Dial(ctx, addr, conn.Options{})
	cancel()
	if err != nil {
		return
	}
	defer c.Close()
	const window = 32
	slots := make(chan struct{}, window)
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			drain(c, slots, window)
			return
		case <-c.Done():
			return
		case slots <- struct{}{}:
		}
		payload := fmt.Sprintf("%s-p%d-%d-%s", label, producer, seq, strings.Repeat("z", (seq*37)%300))
		part := partsTo[(producer+seq)%len(partsTo)]
		l.send(payload, part)
		err := c.Start(conn.ProtocolRequest(putReq(part, payload)), handlerFunc(func(rep *protocol.Reply, err error) {
			if err == nil {
				l.reply(payload, rep)
			}
			<-slots
		}))
		if err != nil {
			return
		}
	}
}

// drain waits until every slot is free (all replies in) or the connection ends.
func drain(c *conn.Conn, slots chan struct{}, window int) {
	for i := 0; i < window; i++ {
		select {
		case slots <- struct{}{}:
		case <-c.Done():
			return
		}
	}
}

// load runs n producers over partsTo until at least acks more puts are
// acknowledged, then calls fault while they are still sending, then stops
// them and waits until they have finished.
func load(t *testing.T, addr, label string, n int, partsTo []int32, l *ledger, acks int64, fault func()) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	base := l.nAck.Load()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); produce(addr, label, i, partsTo, l, stop) }()
	}
	defer wg.Wait()
	defer close(stop)
	require.Eventually(t, func() bool { return l.nAck.Load() >= base+acks }, 60*time.Second, time.Millisecond,
		"producers made no progress: %d of %d acknowledged", l.nAck.Load()-base, acks)
	fault()
}

// putSync sends one put and waits for its acknowledgement.
func putSync(t *testing.T, c *conn.Conn, l *ledger, part int32, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	l.send(payload, part)
	r, err := c.Put(ctx, putReq(part, payload))
	require.NoError(t, err, "put %q to partition %d", payload, part)
	l.mu.Lock()
	l.codes[protocol.CodeOK]++
	l.acked[payload] = ack{part: r.Partition, offset: r.Offset, id: r.MsgID}
	l.mu.Unlock()
	l.nAck.Add(1)
}

// fill puts n messages of about size bytes into part, synchronously in
// batches of pipelined puts.
func fill(t *testing.T, c *conn.Conn, l *ledger, part int32, label string, n, size int) {
	t.Helper()
	const batch = 64
	for i := 0; i < n; i += batch {
		var wg sync.WaitGroup
		var failed atomic.Value
		for j := i; j < min(n, i+batch); j++ {
			payload := fmt.Sprintf("%s-p%d-%d-%s", label, part, j, strings.Repeat("f", size))
			l.send(payload, part)
			wg.Add(1)
			err := c.Start(conn.ProtocolRequest(putReq(part, payload)), handlerFunc(func(rep *protocol.Reply, err error) {
				defer wg.Done()
				if err != nil {
					failed.Store(err.Error())
					return
				}
				if rep.Code != protocol.CodeOK {
					failed.Store(fmt.Sprintf("put answered %d: %s", rep.Code, rep.Body))
				}
				l.reply(payload, rep)
			}))
			if err != nil {
				wg.Done()
				failed.Store(err.Error())
			}
		}
		wg.Wait()
		if f := failed.Load(); f != nil {
			t.Fatalf("filling partition %d: %v", part, f)
		}
	}
}

// stored is one message read back.
type stored struct {
	offset  int64
	id      int64
	payload string
}

// readResult is what a reader got from one partition.
type readResult struct {
	msgs  []stored
	end   int64  // where reading stopped
	code  int32  // 404 at the end; another code when the broker refused a read
	body  string // body of that reply
	err   error  // transport failure or a corrupt/empty message delivered
	moved []string
}

func (r readResult) String() string {
	s := fmt.Sprintf("%d messages, stopped at offset %d with %d %q", len(r.msgs), r.end, r.code, r.body)
	if r.err != nil {
		s += fmt.Sprintf(", error: %v", r.err)
	}
	if len(r.moved) > 0 {
		s += fmt.Sprintf(", moved: %v", r.moved)
	}
	return s
}

// clean reports whether the partition was read to its end without error.
func (r readResult) clean() bool { return r.err == nil && r.code == protocol.CodeNotFound }

// get sends one get and waits for the reply.
func get(c *conn.Conn, part int32, offset int64, maxSize int32) (conn.Reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return c.Get(ctx, &protocol.GetRequest{Topic: topic, Group: "audit", Partition: part, Offset: offset, MaxSize: maxSize})
}

// readPartition reads part from offset from to its end (404). With follow,
// a 301 to a later offset is followed (and recorded in moved).
func readPartition(c *conn.Conn, part int32, from int64, follow bool) readResult {
	var r readResult
	off := from
	for {
		r.end = off
		rep, err := get(c, part, off, 1<<20)
		if err != nil {
			r.err = fmt.Errorf("get partition %d offset %d: %w", part, off, err)
			return r
		}
		switch {
		case rep.Verb == protocol.VerbValue:
			it := protocol.NewMessageIterator(rep.Body)
			for it.Next() {
				m := it.Message()
				r.msgs = append(r.msgs, stored{offset: off + m.Offset, id: m.ID, payload: string(m.Data)})
			}
			if err := it.Err(); err != nil {
				r.err = fmt.Errorf("CORRUPT message delivered in partition %d after offset %d: %w", part, off, err)
				return r
			}
			if it.Consumed() == 0 {
				r.err = fmt.Errorf("get partition %d offset %d: a value of %d bytes without a whole message", part, off, len(rep.Body))
				return r
			}
			off += int64(it.Consumed())
		case rep.Code == protocol.CodeMoved && follow:
			var to int64
			if _, err := fmt.Sscan(string(rep.Body), &to); err != nil || to <= off {
				r.code, r.body = rep.Code, string(rep.Body)
				return r
			}
			r.moved = append(r.moved, fmt.Sprintf("%d→%d", off, to))
			off = to
		default:
			r.code, r.body = rep.Code, string(rep.Body)
			return r
		}
	}
}

// readAll reads every partition from offset 0.
func readAll(t *testing.T, addr string, follow bool) map[int32]readResult {
	t.Helper()
	c := dial(t, addr)
	defer c.Close()
	out := map[int32]readResult{}
	for p := int32(0); p < parts; p++ {
		out[p] = readPartition(c, p, 0, follow)
	}
	return out
}

// auditOpts tune an audit.
type auditOpts struct {
	// exact: every message read must have been acknowledged (nothing was
	// in flight at the fault).
	exact bool
	// only: audit these partitions; nil = all.
	only []int32
	// allowMissing: acknowledged messages of these partitions below the given
	// offsets may be missing (a deleted segment).
	allowMissing map[int32]func(offset int64) bool
	// atLeastOnce: the producer retried puts whose reply was lost (a
	// failover), so a message may be stored twice and a producer's
	// messages may be out of order; both are counted, not failures.
	atLeastOnce bool
}

func (o auditOpts) audited(p int32) bool {
	if o.only == nil {
		return true
	}
	for _, q := range o.only {
		if q == p {
			return true
		}
	}
	return false
}

// findings are an audit's problems by kind.
type findings struct {
	lost, invented, dup, order, unacked, unclean []string
	read                                         int
}

// audit compares what was read with the ledger: every acknowledged put is
// read back at its offset with its payload and id (else LOST), every message
// read was sent to that partition (else INVENTED), no payload twice, each
// producer's messages in send order. Partitions that did not read cleanly
// to their end fail the audit too.
func (l *ledger) audit(t *testing.T, got map[int32]readResult, o auditOpts) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var f findings
	for p := int32(0); p < parts; p++ {
		if r, ok := got[p]; ok && o.audited(p) {
			l.auditRead(&f, p, r)
			l.auditAcked(&f, p, r, o.allowMissing[p])
		}
	}
	var problems []string
	report := func(kind string, items []string) {
		if n := len(items); n > 0 {
			s := fmt.Sprintf("%s (%d): %s", kind, n, strings.Join(items[:min(n, 8)], "; "))
			if n > 8 {
				s += fmt.Sprintf(" … and %d more", n-8)
			}
			problems = append(problems, s)
		}
	}
	report("LOST acknowledged messages", f.lost)
	report("INVENTED messages (never sent to that partition)", f.invented)
	if o.atLeastOnce {
		t.Logf("at-least-once delivery: %d duplicated, %d reordered messages", len(f.dup), len(f.order))
	} else {
		report("DUPLICATED messages", f.dup)
		report("REORDERED messages", f.order)
	}
	if o.exact {
		report("unacknowledged messages read back although nothing was in flight", f.unacked)
	}
	report("partitions not readable to their end", f.unclean)
	if len(problems) > 0 {
		t.Errorf("audit failed (%d acknowledged, %d read):\n  %s", len(l.acked), f.read, strings.Join(problems, "\n  "))
		return
	}
	t.Logf("audit ok: %d acknowledged, %d read back, %d sent, put reply codes %v", len(l.acked), f.read, len(l.sent), l.codes)
}

// auditRead checks every message read from partition p. l.mu is held.
func (l *ledger) auditRead(f *findings, p int32, r readResult) {
	if !r.clean() {
		f.unclean = append(f.unclean, fmt.Sprintf("partition %d: %s", p, r))
	}
	seen := map[string]bool{}
	last := map[string]int{}
	for _, m := range r.msgs {
		f.read++
		at := fmt.Sprintf("partition %d offset %d: %q", p, m.offset, trunc(m.payload))
		part, ok := l.sent[m.payload]
		switch {
		case !ok:
			f.invented = append(f.invented, fmt.Sprintf("%s (%d bytes)", at, len(m.payload)))
			continue
		case part >= 0 && part != p: // -1: the client chose the partition
			f.invented = append(f.invented, fmt.Sprintf("%s was sent to partition %d", at, part))
		}
		if seen[m.payload] {
			f.dup = append(f.dup, at)
		}
		seen[m.payload] = true
		if _, ok := l.acked[m.payload]; !ok {
			f.unacked = append(f.unacked, at)
		}
		if key, seq, ok := producerSeq(m.payload); ok {
			if prev, had := last[key]; had && seq <= prev {
				f.order = append(f.order, fmt.Sprintf("%s: %s seq %d after %d", at, key, seq, prev))
			}
			last[key] = seq
		}
	}
}

// auditAcked checks that every acknowledged put of partition p was read at
// its offset (unless mayMiss allows that offset). l.mu is held.
func (l *ledger) auditAcked(f *findings, p int32, r readResult, mayMiss func(int64) bool) {
	byOffset := make(map[int64]stored, len(r.msgs))
	for _, m := range r.msgs {
		byOffset[m.offset] = m
	}
	var lost []ack
	names := map[int64]string{}
	for payload, a := range l.acked {
		if a.part != p {
			continue
		}
		m, ok := byOffset[a.offset]
		if ok && m.payload == payload && m.id == a.id || !ok && mayMiss != nil && mayMiss(a.offset) {
			continue
		}
		lost = append(lost, a)
		names[a.offset] = payload
	}
	sort.Slice(lost, func(i, j int) bool { return lost[i].offset < lost[j].offset })
	for _, a := range lost {
		payload := names[a.offset]
		at := fmt.Sprintf("partition %d offset %d: %q", p, a.offset, trunc(payload))
		switch m, ok := byOffset[a.offset]; {
		case ok && m.payload == payload:
			f.lost = append(f.lost, fmt.Sprintf("%s has id %d, acknowledged %d", at, m.id, a.id))
		case ok:
			f.lost = append(f.lost, fmt.Sprintf("%s, read %q there instead", at, trunc(m.payload)))
		default:
			f.lost = append(f.lost, at)
		}
	}
}

// producerSeq splits "<label>-p<producer>-<seq>-..." into ("<label>-p<producer>", seq).
func producerSeq(payload string) (string, int, bool) {
	f := strings.SplitN(payload, "-", 4)
	if len(f) < 3 || !strings.HasPrefix(f[1], "p") {
		return "", 0, false
	}
	var seq int
	if _, err := fmt.Sscan(f[2], &seq); err != nil {
		return "", 0, false
	}
	return f[0] + "-" + f[1], seq, true
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
