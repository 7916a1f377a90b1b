package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/protocol"
)

// childDirEnv makes the test binary run a broker on that data directory
// instead of the tests (see TestMain).
const childDirEnv = "METAQ_BROKER_CHILD_DIR"

const (
	crashTopic = "crash"
	crashParts = 4
)

// runChildBroker serves a broker in group-commit mode on 127.0.0.1:0, prints
// "READY <addr> <open nanos>" on stdout and serves until killed; SIGTERM
// shuts it down gracefully (exit 0).
func runChildBroker(dir string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := broker.Options{
		BrokerID: 1, ListenAddr: "127.0.0.1:0", HostName: "127.0.0.1", DataDir: dir, Logger: log,
		Topic: topicsOnly(map[string]int{crashTopic: crashParts}),
	}
	opts.Store.MaxSegmentSize = 64 << 10 // several segments per partition: recovery across rolls
	start := time.Now()
	b, err := broker.New(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child broker:", err)
		return 2
	}
	opened := time.Since(start)
	if err := b.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child broker:", err)
		return 2
	}
	fmt.Printf("READY %s %d\n", b.Addr(), opened.Nanoseconds())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.Shutdown(sctx); err != nil {
		fmt.Fprintln(os.Stderr, "child broker shutdown:", err)
		return 3
	}
	return 0
}

// lockedBuffer collects a child's stderr.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type child struct {
	cmd    *exec.Cmd
	addr   string
	open   time.Duration // broker.New: open and recover the data directory
	stderr *lockedBuffer
	exited chan struct{}
	err    error // of Wait, valid after exited
}

func startChild(t *testing.T, dir string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir)
	ch := &child{cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = ch.stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	go func() {
		ch.err = cmd.Wait()
		close(ch.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-ch.exited
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "READY ") {
				ready <- sc.Text()
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case line := <-ready:
		var nanos int64
		_, err := fmt.Sscanf(line, "READY %s %d", &ch.addr, &nanos)
		require.NoError(t, err, line)
		ch.open = time.Duration(nanos)
	case <-ch.exited:
		t.Fatalf("child broker exited: %v\n%s", ch.err, ch.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("child broker not ready within 30s\n%s", ch.stderr.String())
	}
	return ch
}

func (ch *child) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-ch.exited:
	case <-time.After(timeout):
		t.Fatalf("child broker did not exit within %v\n%s", timeout, ch.stderr.String())
	}
}

// acked is a put the broker acknowledged.
type acked struct {
	part   int32
	offset int64
	id     int64
}

// ledger records every acknowledged put by payload.
type ledger struct {
	mu    sync.Mutex // guards acks and codes
	acks  map[string]acked
	codes map[int32]int
}

func (l *ledger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks)
}

// produce pipelines puts on one connection until it breaks or stop closes,
// with up to window puts unacknowledged. Payload "p<producer>-<cycle>-<seq>-<pad>".
func produce(addr string, producer, cycle int, l *ledger, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	const window = 32
	slots := make(chan struct{}, window)
	var pmu sync.Mutex // guards pending
	pending := map[int32]string{}
	done := make(chan struct{})
	go func() { // reader
		defer close(done)
		cl := &brokertest.Client{Conn: conn, R: bufio.NewReader(conn)}
		for {
			r, closed, err := readOne(cl, 30*time.Second)
			if err != nil || closed {
				return
			}
			pmu.Lock()
			payload, ok := pending[r.opaque]
			delete(pending, r.opaque)
			pmu.Unlock()
			l.mu.Lock()
			l.codes[r.code]++
			if ok && r.code == 200 {
				var a acked
				if _, err := fmt.Sscanf(string(r.body), "%d %d %d", &a.id, &a.part, &a.offset); err == nil {
					l.acks[payload] = a
				}
			}
			l.mu.Unlock()
			<-slots
		}
	}()
	// On stop, stop writing but read the replies still coming until the
	// broker closes the connection (at once when killed; after draining on
	// SIGTERM), so that every reply sent is recorded.
	defer func() { <-done; conn.Close() }()
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		case <-done:
			return
		case slots <- struct{}{}:
		}
		payload := fmt.Sprintf("p%d-%d-%d-%s", producer, cycle, seq, strings.Repeat("z", (seq*37)%300))
		part := (producer + seq) % crashParts
		opaque := int32(seq)
		pmu.Lock()
		pending[opaque] = payload
		pmu.Unlock()
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte(putLine(crashTopic, part, payload, int(opaque)))); err != nil {
			return
		}
	}
}

// loadUntil runs producers against addr until at least n more puts are
// acknowledged, then calls interrupt while they are still sending, and waits
// for them to stop.
func loadUntil(t *testing.T, addr string, cycle, n int, l *ledger, interrupt func()) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	base := l.count()
	for p := 0; p < 3; p++ {
		wg.Add(1)
		go produce(addr, p, cycle, l, stop, &wg)
	}
	require.Eventually(t, func() bool { return l.count() >= base+n }, 30*time.Second, time.Millisecond,
		"producers made no progress")
	interrupt()
	close(stop)
	wg.Wait()
}

// stored is one message read back.
type stored struct {
	offset int64
	id     int64
	data   string
}

// readAll reads every partition from offset 0 to its end.
func readAll(t *testing.T, addr string) map[int32][]stored {
	t.Helper()
	c := brokertest.Dial(t, addr)
	defer c.Close()
	out := map[int32][]stored{}
	for p := int32(0); p < crashParts; p++ {
		off := int64(0)
		for op := int32(1); ; op++ {
			c.Send(t, fmt.Sprintf("get %s audit %d %d 1048576 %d\r\n", crashTopic, p, off, op))
			r, closed, err := readOne(c, 10*time.Second)
			require.NoError(t, err)
			require.False(t, closed)
			require.Equal(t, op, r.opaque)
			if !r.value {
				require.Equal(t, int32(404), r.code, "partition %d offset %d: %q %q", p, off, r.line, r.body)
				break
			}
			it := protocol.NewMessageIterator(r.body)
			for it.Next() {
				m := it.Message()
				out[p] = append(out[p], stored{offset: off + m.Offset, id: m.ID, data: string(m.Data)})
			}
			require.NoError(t, it.Err(), "corrupt message served in partition %d after offset %d", p, off)
			require.Positive(t, it.Consumed(), "no complete message at partition %d offset %d", p, off)
			off += int64(it.Consumed())
		}
	}
	return out
}

// audit checks acked ⊆ stored at the acknowledged offsets, per-producer
// order within each partition, unique ids and well-formed payloads.
func audit(t *testing.T, l *ledger, got map[int32][]stored) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	byOffset := map[int32]map[int64]stored{}
	ids := map[int64]bool{}
	total := 0
	for p, msgs := range got {
		byOffset[p] = map[int64]stored{}
		last := map[string]int{} // producer-cycle → last seq
		for _, m := range msgs {
			total++
			byOffset[p][m.offset] = m
			require.False(t, ids[m.id], "duplicate message id %d", m.id)
			ids[m.id] = true
			var prod, cycle, seq int
			_, err := fmt.Sscanf(strings.ReplaceAll(m.data, "-", " "), "p%d %d %d", &prod, &cycle, &seq)
			require.NoError(t, err, "unexpected payload %q", m.data)
			key := fmt.Sprintf("%d-%d", prod, cycle)
			if prev, ok := last[key]; ok {
				require.Greater(t, seq, prev, "partition %d: producer %s out of order", p, key)
			}
			last[key] = seq
		}
	}
	for payload, a := range l.acks {
		m, ok := byOffset[a.part][a.offset]
		require.True(t, ok, "acknowledged put %q (partition %d offset %d) lost", payload, a.part, a.offset)
		require.Equal(t, payload, m.data, "partition %d offset %d", a.part, a.offset)
		require.Equal(t, a.id, m.id)
	}
	t.Logf("audit: %d acknowledged, %d stored (unacknowledged but durable puts may be stored too)", len(l.acks), total)
}

// TestKill9DuringPipelinedPutsLosesNoAcknowledgedMessage runs the broker as a
// subprocess, SIGKILLs it under load five times (RELIABILITY.md), and checks after each
// restart that every acknowledged put is there, in order, uncorrupted; then
// SIGTERMs it under load and checks the graceful path.
func TestKill9DuringPipelinedPutsLosesNoAcknowledgedMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess crash test")
	}
	dir := t.TempDir()
	l := &ledger{acks: map[string]acked{}, codes: map[int32]int{}}
	ch := startChild(t, dir)
	const kills = 5
	for cycle := 0; cycle < kills; cycle++ {
		loadUntil(t, ch.addr, cycle, 400, l, func() { require.NoError(t, ch.cmd.Process.Signal(syscall.SIGKILL)) })
		ch.wait(t, 10*time.Second)
		ch = startChild(t, dir)
		t.Logf("cycle %d: restart after kill -9 opened the data directory in %v", cycle, ch.open)
		audit(t, l, readAll(t, ch.addr))
	}

	// SIGTERM under load: a graceful shutdown leaves clean markers, the
	// restart takes the fast path (no scan warnings) and loses nothing.
	loadUntil(t, ch.addr, kills, 400, l, func() { require.NoError(t, ch.cmd.Process.Signal(syscall.SIGTERM)) })
	ch.wait(t, 30*time.Second)
	require.NoError(t, ch.err, "graceful shutdown exit status\n%s", ch.stderr.String())
	for p := 0; p < crashParts; p++ {
		_, err := os.Stat(filepath.Join(dir, fmt.Sprintf("%s-%d", crashTopic, p), "CLEAN"))
		require.NoError(t, err, "partition %d has no clean-shutdown marker", p)
	}
	ch = startChild(t, dir)
	t.Logf("restart after SIGTERM opened the data directory in %v", ch.open)
	require.Less(t, ch.open, time.Second)
	got := readAll(t, ch.addr)
	audit(t, l, got)
	unacked := 0
	l.mu.Lock()
	for _, msgs := range got {
		for _, m := range msgs {
			if _, ok := l.acks[m.data]; !ok && strings.Contains(m.data, "-3-") {
				unacked++
			}
		}
	}
	l.mu.Unlock()
	t.Logf("graceful shutdown: %d stored puts of the SIGTERM run got no 200 (replies lost in flight)", unacked)
	require.NotContains(t, ch.stderr.String(), "truncating", "a clean restart must not repair anything")
	require.NotContains(t, ch.stderr.String(), "rebuilding", "a clean restart must trust its sidecars")
	t.Logf("reply codes over all cycles: %v", l.codes)
}
