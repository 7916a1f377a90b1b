package faulttest

import (
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/protocol"
)

// rssSampler samples a process's VmRSS until stopped and keeps the peak.
type rssSampler struct {
	p      *proc
	base   int64
	limit  int64 // rise at which the sampler kills the broker to protect the machine
	peak   atomic.Int64
	peakAt atomic.Int64 // unix nanos of the last rise of the peak by more than 1 MiB
	over   atomic.Bool
	stop   chan struct{}
	done   chan struct{}
}

func startRSS(t *testing.T, p *proc, limit int64) *rssSampler {
	t.Helper()
	base, err := p.statusKB("VmRSS")
	require.NoError(t, err)
	s := &rssSampler{p: p, base: base, limit: limit, stop: make(chan struct{}), done: make(chan struct{})}
	s.peak.Store(base)
	s.peakAt.Store(time.Now().UnixNano())
	go s.run()
	t.Cleanup(s.halt)
	return s
}

func (s *rssSampler) run() {
	defer close(s.done)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	mark := s.base
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		rss, err := s.p.statusKB("VmRSS")
		if err != nil {
			return
		}
		if rss > s.peak.Load() {
			s.peak.Store(rss)
		}
		if rss > mark+1<<20 { // growth, not noise
			mark = rss
			s.peakAt.Store(time.Now().UnixNano())
		}
		if rss-s.base > s.limit && !s.over.Load() {
			// Unbounded growth: stop it before it takes the machine down.
			s.over.Store(true)
			_ = s.p.cmd.Process.Kill()
		}
	}
}

func (s *rssSampler) halt() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// dialTinyRcvbuf connects with a 4 KiB receive buffer (set before connect,
// so the advertised window stays small).
func dialTinyRcvbuf(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	nc, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	return nc
}

// hog is a client with a 4 KiB receive buffer that pipelines gets of 1 MiB
// of partition 0 and never reads.
type hog struct {
	nc        net.Conn
	written   atomic.Int64
	lastWrite atomic.Int64 // unix nanos
	done      chan struct{}
	err       error // of the writer, valid after done
}

// startHog writes n gets, 100 per write, until done or the connection fails.
func startHog(t *testing.T, addr string, n int) *hog {
	t.Helper()
	h := &hog{nc: dialTinyRcvbuf(t, addr), done: make(chan struct{})}
	h.lastWrite.Store(time.Now().UnixNano())
	go func() {
		defer close(h.done)
		var buf []byte
		for i := 0; i < n; i += 100 {
			buf = buf[:0]
			for j := i; j < min(n, i+100); j++ {
				buf = (&protocol.GetRequest{Topic: topic, Group: "hog", Partition: 0, Offset: 0, MaxSize: 1 << 20, OpaqueID: int32(j)}).AppendTo(buf)
			}
			_ = h.nc.SetWriteDeadline(time.Now().Add(60 * time.Second))
			if _, err := h.nc.Write(buf); err != nil {
				h.err = err
				return
			}
			h.written.Add(int64(min(n, i+100) - i))
			h.lastWrite.Store(time.Now().UnixNano())
		}
	}()
	t.Cleanup(h.close)
	return h
}

// blocked reports whether the writer has finished, or has been held back
// for 2 s (the broker stopped reading its gets).
func (h *hog) blocked() bool {
	select {
	case <-h.done:
		return true
	default:
		return time.Since(time.Unix(0, h.lastWrite.Load())) > 2*time.Second
	}
}

func (h *hog) String() string {
	select {
	case <-h.done:
		return fmt.Sprintf("%d gets written, writer ended (%v)", h.written.Load(), h.err)
	default:
		return fmt.Sprintf("%d gets written, last write %v ago", h.written.Load(), time.Since(time.Unix(0, h.lastWrite.Load())).Round(time.Millisecond))
	}
}

// close closes the connection and waits for the writer.
func (h *hog) close() {
	_ = h.nc.Close()
	<-h.done
}

// TestBinaryPipelinedGetsWithoutReading: one client with a tiny receive
// buffer pipelines 10,000 gets of 1 MiB and reads nothing. The broker's RSS
// may rise by at most its per-connection output limit + 64 MiB, another
// client's put and get are answered within 5 s each meanwhile, and the
// broker lives on after the client goes.
func TestBinaryPipelinedGetsWithoutReading(t *testing.T) {
	t.Parallel()
	const outLimit = 16 << 20
	// Under -race the broker is race-built and its shadow memory multiplies
	// the heap (measured: +91..96 MiB here where the plain build rises by
	// +11..28 MiB), so the bound is scaled; `go test` without -race checks
	// the exact bound.
	bound := int64(outLimit+64<<20) * raceMemoryFactor
	b := startBroker(t, config{maxSegmentSize: 8 << 20, extra: []string{fmt.Sprintf("maxConnectionOutputBytes=%d", outLimit)}})
	l := newLedger()
	c := dial(t, b.addr)
	fill(t, c, l, 0, "big", 80, 16<<10) // 1.3 MB in one segment: every get answers 1 MiB
	fill(t, c, l, 1, "small", 10, 100)
	rep, err := get(c, 0, 0, 1<<20)
	require.NoError(t, err)
	require.Equal(t, protocol.VerbValue, rep.Verb)
	require.GreaterOrEqual(t, len(rep.Body), 1000<<10, "a get of partition 0 should answer about 1 MiB")

	rss := startRSS(t, b, bound+64<<20)
	h := startHog(t, b.addr, 10000)
	k := startCanary(t, b.addr, l, 1)
	// The abuse phase ends when all gets are written or the writer has been
	// held back for 2 s (the broker stopped reading them), the RSS has made
	// no new peak for 3 s, and the canary has done a few rounds meanwhile.
	eventually(t, 90*time.Second, func() (bool, string) {
		flat := time.Since(time.Unix(0, rss.peakAt.Load())) > 3*time.Second
		return h.blocked() && flat && k.rounds.Load() >= 5 || rss.over.Load() || !b.alive() || k.failure() != nil,
			fmt.Sprintf("abuse phase: %s, canary %d rounds, RSS peak +%d MiB", h, k.rounds.Load(), (rss.peak.Load()-rss.base)>>20)
	})
	checkRSS := func(when string) {
		t.Helper()
		rise := rss.peak.Load() - rss.base
		t.Logf("%s: RSS %d MiB before, peak +%d MiB (bound %d MiB); %d gets written; canary %d rounds, slowest %v",
			when, rss.base>>20, rise>>20, bound>>20, h.written.Load(), k.rounds.Load(), time.Duration(k.slowest.Load()))
		require.False(t, rss.over.Load(), "MEMORY: the broker's RSS rose by more than %d MiB %s (the test killed it)", (bound+64<<20)>>20, when)
		b.requireAlive("10,000 pipelined 1 MiB gets from a client that does not read")
		require.LessOrEqual(t, rise, bound, "MEMORY: RSS rose by %d MiB %s, more than (maxConnectionOutputBytes (%d MiB) + 64 MiB) × %d", rise>>20, when, outLimit>>20, raceMemoryFactor)
		require.NoError(t, k.failure(), "another client's put/get was not answered within 5 s %s", when)
	}
	checkRSS("while the client hogs")

	h.close()
	c2 := dial(t, b.addr)
	putSync(t, c2, l, 2, "hog-after-p2-0")
	checkRSS("after the client closed")
	k.halt()
	rss.halt()
	l.audit(t, readAll(t, b.addr, false), auditOpts{only: []int32{1, 2, 3}})
}
