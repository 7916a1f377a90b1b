package faulttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// writeSegments writes n segment files of two messages each into partition
// part's directory under dataDir, in the documented format (broker/store
// doc.go), and records the messages as acknowledged. Message ids are
// snowflakes of the current time, so retention by age keeps them.
func writeSegments(t *testing.T, l *ledger, dataDir string, part int32, n int) {
	t.Helper()
	dir := filepath.Join(dataDir, fmt.Sprintf("%s-%d", topic, part))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	ms := time.Now().UnixMilli() - store.IDEpoch
	seq := int64(0)
	off := int64(0)
	l.mu.Lock()
	defer l.mu.Unlock()
	var buf []byte
	for s := 0; s < n; s++ {
		base := off
		buf = buf[:0]
		for i := 0; i < 2; i++ {
			if seq == 4096 {
				ms, seq = ms+1, 0
			}
			id := ms<<22 | 1<<12 | seq
			seq++
			payload := fmt.Sprintf("seg-p0-%d-%s", 2*s+i, strings.Repeat("s", 60))
			l.sent[payload] = part
			l.acked[payload] = ack{part: part, offset: off, id: id}
			buf = protocol.AppendMessage(buf, id, 0, []byte(payload))
			off = base + int64(len(buf))
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d.meta", base)), buf, 0o644))
	}
	l.nAck.Add(int64(2 * n))
}

// openFiles counts the process's open descriptors.
func (p *proc) openFiles() int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// TestBinaryManySegmentsUnderFdLimit runs the broker under `ulimit -n 4096`
// over a partition of 10,000 segments (written beforehand in the segment
// format; producing them through the wire takes minutes of fsyncs): the
// broker must start, serve every message of every segment from offset 0 in
// order, take new puts, and stay alive. The store's default bound on open
// read segments (MaxOpenSegments, 1024) keeps it under the limit.
func TestBinaryManySegmentsUnderFdLimit(t *testing.T) {
	t.Parallel()
	const nSegs, nofile = 10000, 4096
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	if lim.Max < nofile {
		t.Skipf("the hard limit on open files is %d: cannot run the broker under ulimit -n %d", lim.Max, nofile)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	l := newLedger()
	writeSegments(t, l, dataDir, 0, nSegs)
	b := startBroker(t, config{dataDir: dataDir, maxSegmentSize: 4096, nofile: nofile})
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", b.pid))
	require.NoError(t, err)
	require.Regexp(t, fmt.Sprintf(`Max open files\s+%d\s+%d`, nofile, nofile), string(limits), "the fd limit did not apply to the broker")
	t.Logf("broker up over %d segments with %d open files", nSegs, b.openFiles())

	c := dial(t, b.addr)
	for p := int32(1); p < parts; p++ {
		fill(t, c, l, p, "fd", 10, 50)
	}
	r := readPartition(c, 0, 0, false)
	b.requireAlive(fmt.Sprintf("reading %d segments under ulimit -n %d", nSegs, nofile))
	t.Logf("read partition 0: %s; %d open files", r, b.openFiles())
	putSync(t, c, l, 0, "fd-p0-new")
	l.audit(t, readAll(t, b.addr, false), auditOpts{exact: true})
	require.LessOrEqual(t, b.openFiles(), nofile)
	b.requireAlive("the fd-limit run")
}

// canary does put+get rounds on its own connection until stop, and records
// the slowest round and any failure.
type canary struct {
	rounds  atomic.Int64
	slowest atomic.Int64 // nanoseconds
	mu      sync.Mutex   // guards err
	err     error
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// startCanary starts rounds on partition part until halt (or cleanup).
func startCanary(t *testing.T, addr string, l *ledger, part int32) *canary {
	t.Helper()
	c := dial(t, addr)
	k := &canary{stop: make(chan struct{}), done: make(chan struct{})}
	stop := k.stop
	t.Cleanup(k.halt)
	go func() {
		defer close(k.done)
		pace := time.NewTicker(10 * time.Millisecond) // a client, not a load generator
		defer pace.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-pace.C:
			}
			start := time.Now()
			if err := canaryRound(c, l, part, i); err != nil {
				k.mu.Lock()
				k.err = fmt.Errorf("round %d (after %v): %w", i, time.Since(start), err)
				k.mu.Unlock()
				return
			}
			if d := int64(time.Since(start)); d > k.slowest.Load() {
				k.slowest.Store(d)
			}
			k.rounds.Add(1)
		}
	}()
	return k
}

// canaryRound is one put and one get, each answered within 5 s.
func canaryRound(c *conn.Conn, l *ledger, part int32, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	payload := fmt.Sprintf("canary-p%d-%d", part, i)
	l.send(payload, part)
	rep, err := c.Do(ctx, conn.ProtocolRequest(putReq(part, payload)))
	if err != nil {
		return fmt.Errorf("put: %w", err)
	}
	l.reply(payload, &protocol.Reply{Verb: rep.Verb, Code: rep.Code, Body: rep.Body})
	if rep.Code != protocol.CodeOK {
		return fmt.Errorf("put answered %d %s", rep.Code, rep.Body)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	rep, err = c.Get(ctx2, &protocol.GetRequest{Topic: topic, Group: "canary", Partition: part, Offset: 0, MaxSize: 4096})
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	if rep.Verb != protocol.VerbValue {
		return fmt.Errorf("get answered %d %s", rep.Code, rep.Body)
	}
	return nil
}

func (k *canary) halt() {
	k.once.Do(func() { close(k.stop) })
	<-k.done
}

func (k *canary) failure() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// TestBinarySlowLoris: a client sends a get line one byte at a time, much
// slower than partialRequestTimeoutMs allows: the broker closes the
// connection before the line is complete (not before the timeout), and
// another client's put and get are answered meanwhile.
func TestBinarySlowLoris(t *testing.T) {
	t.Parallel()
	const partial = time.Second
	b := startBroker(t, config{extra: []string{fmt.Sprintf("partialRequestTimeoutMs=%d", partial.Milliseconds())}})
	l := newLedger()
	line := (&protocol.GetRequest{Topic: topic, Group: "loris", Partition: 0, Offset: 0, MaxSize: 1024, OpaqueID: 7}).AppendTo(nil)
	nc, err := net.DialTimeout("tcp", b.addr, 10*time.Second)
	require.NoError(t, err)
	defer nc.Close()
	closed := make(chan error, 1)
	go func() { // waits for the close (or a reply, which means the broker waited for the line)
		_ = nc.SetReadDeadline(time.Now().Add(60 * time.Second))
		buf := make([]byte, 512)
		n, err := nc.Read(buf)
		switch {
		case n > 0:
			err = fmt.Errorf("SLOW LORIS: the broker waited for the whole trickled line and answered %q", buf[:n])
		case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
			err = nil
		}
		closed <- err
	}()
	k := startCanary(t, b.addr, l, 1)

	// One byte every 250 ms: the whole line would take about 6 s.
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	var closedAt time.Duration
	var readErr error
	gotClose := false
	sent := 0
loop:
	for sent < len(line) {
		select {
		case readErr = <-closed:
			gotClose = true
			break loop
		case <-tick.C:
		}
		if _, err := nc.Write(line[sent : sent+1]); err != nil {
			break // the broker closed (reset) the connection
		}
		sent++
	}
	closedAt = time.Since(start)
	if !gotClose {
		select {
		case readErr = <-closed:
			closedAt = time.Since(start)
		case <-time.After(30 * time.Second):
			t.Fatalf("SLOW LORIS: the broker kept a connection open for %v while its request line trickled in one byte per 250 ms (partialRequestTimeoutMs=%d)", time.Since(start), partial.Milliseconds())
		}
	}
	require.NoError(t, readErr, "the slow connection must be closed without a reply")
	require.Less(t, sent, len(line), "SLOW LORIS: the broker let the whole %d-byte line trickle in over %v before closing (partialRequestTimeoutMs=%d)", len(line), closedAt, partial.Milliseconds())
	require.GreaterOrEqual(t, closedAt, partial-100*time.Millisecond, "closed before partialRequestTimeoutMs")
	t.Logf("slow connection closed after %v and %d of %d bytes; canary %d rounds, slowest %v", closedAt, sent, len(line), k.rounds.Load(), time.Duration(k.slowest.Load()))
	require.NoError(t, k.failure(), "another client was not served while the slow client trickled")
	require.Positive(t, k.rounds.Load())
	b.requireAlive("a slow-loris client")
}
