package zkrecipes_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/metaq-go/metaq/internal/zkwire"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// lkCountingProxy forwards ZooKeeper client connections and counts the
// requests clients send (every frame after the connect request except pings),
// so a benchmark can report ZooKeeper operations per acquisition exactly.
type lkCountingProxy struct {
	target   string
	ln       net.Listener
	requests atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex // guards conns
	conns    []net.Conn
}

func newLkCountingProxy(tb testing.TB, target string) *lkCountingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &lkCountingProxy{target: target, ln: ln}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.close)
	return p
}

func (p *lkCountingProxy) addr() string { return p.ln.Addr().String() }

func (p *lkCountingProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			defer s.Close()
			_, _ = io.Copy(c, s)
		}()
		go func() {
			defer p.wg.Done()
			defer c.Close()
			for first := true; ; first = false {
				frame, err := zkwire.ReadFrame(c)
				if err != nil {
					s.Close()
					return
				}
				if !first {
					if _, op, err := zkwire.RequestHeader(frame[4:]); err == nil && op != zkwire.OpPing {
						p.requests.Add(1)
					}
				}
				if _, err := s.Write(frame); err != nil {
					return
				}
			}
		}()
	}
}

func (p *lkCountingProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// lkContender is one lock user in the benchmark.
type lkContender struct {
	lock   func() error
	unlock func() error
	close  func()
}

// BenchmarkMutex compares zkrecipes.Mutex ("ours") with go-zookeeper's
// zk.Lock ("zklock", on its own zk.Conn) on the same server in the same run;
// "zkonsession" is zk.Lock on a zkrecipes.Session's connection, to separate
// the cost of the Session wrapper from that of the recipe. N contenders (one
// ZooKeeper session each) take turns. Metrics: ns/op is the wall time per
// acquisition+release of the whole group (inverse throughput), zkops/acquire
// the client requests per acquisition (counted by a proxy that parses the
// frames; pings excluded), clientcpu-µs/acquire the CPU of this process per
// acquisition (clients and proxy), lock-p50/p99-µs the latency of single
// Lock calls, including the wait for the other contenders.
func BenchmarkMutex(b *testing.B) {
	srv := zktest.Shared(b)
	proxy := newLkCountingProxy(b, srv.Addr)
	if err := lkWarmUp(srv.Addr, 500); err != nil {
		b.Fatal(err)
	}
	impls := []struct {
		name string
		make func(b *testing.B, dir string) lkContender
	}{
		{"ours", func(b *testing.B, dir string) lkContender {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s, err := zkrecipes.Connect(ctx, []string{proxy.addr()}, zkrecipes.WithSessionTimeout(2*time.Second))
			if err != nil {
				b.Fatal(err)
			}
			m, err := zkrecipes.NewMutex(s, dir)
			if err != nil {
				b.Fatal(err)
			}
			bg := context.Background()
			return lkContender{lock: func() error { return m.Lock(bg) }, unlock: func() error { return m.Unlock(bg) }, close: s.Close}
		}},
		{"zkonsession", func(b *testing.B, dir string) lkContender {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s, err := zkrecipes.Connect(ctx, []string{proxy.addr()}, zkrecipes.WithSessionTimeout(2*time.Second))
			if err != nil {
				b.Fatal(err)
			}
			l := zk.NewLock(s.Conn(), dir, zk.WorldACL(zk.PermAll))
			return lkContender{lock: l.Lock, unlock: l.Unlock, close: s.Close}
		}},
		{"zklock", func(b *testing.B, dir string) lkContender {
			conn, events, err := zk.Connect([]string{proxy.addr()}, 2*time.Second, zk.WithLogger(zktest.QuietLogger{}))
			if err != nil {
				b.Fatal(err)
			}
			for ev := range events {
				if ev.State == zk.StateHasSession {
					break
				}
			}
			go func() { // keep draining: go-zookeeper blocks on a full event channel
				for range events {
				}
			}()
			l := zk.NewLock(conn, dir, zk.WorldACL(zk.PermAll))
			return lkContender{lock: l.Lock, unlock: l.Unlock, close: conn.Close}
		}},
	}
	// Interleaved (ours, zklock per contender count) so that both see the same
	// machine load; the names still read BenchmarkMutex/<impl>/contenders=N.
	run := 0
	for _, n := range []int{1, 10, 50} {
		for _, impl := range impls {
			b.Run(fmt.Sprintf("%s/contenders=%d", impl.name, n), func(b *testing.B) {
				run++
				dir := fmt.Sprintf("/bench/%s-%d-%d-%s", impl.name, n, run, time.Now().Format("150405.000000"))
				if err := lkEnsure(proxy.addr(), dir); err != nil {
					b.Fatal(err)
				}
				cs := make([]lkContender, n)
				for i := range cs {
					cs[i] = impl.make(b, dir)
				}
				defer func() {
					for _, c := range cs {
						c.close()
					}
				}()
				lkBenchContenders(b, proxy, cs)
			})
		}
	}
}

func lkBenchContenders(b *testing.B, proxy *lkCountingProxy, cs []lkContender) {
	var left atomic.Int64
	left.Store(int64(b.N))
	lat := make([][]time.Duration, len(cs))
	errs := make(chan error, len(cs))
	var wg sync.WaitGroup
	b.ResetTimer()
	before := proxy.requests.Load()
	cpuBefore := processCPU()
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				t0 := time.Now()
				if err := c.lock(); err != nil {
					errs <- err
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
				if err := c.unlock(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	ops := proxy.requests.Load() - before
	cpu := processCPU() - cpuBefore
	close(errs)
	if err := errors.Join(slices.Collect(func(yield func(error) bool) {
		for e := range errs {
			if !yield(e) {
				return
			}
		}
	})...); err != nil {
		b.Fatal(err)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	b.ReportMetric(float64(ops)/float64(b.N), "zkops/acquire")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "clientcpu-µs/acquire")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "lock-p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "lock-p99-µs")
}

// lkEnsure creates dir through a short-lived session.
func lkEnsure(addr, dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := zkrecipes.Connect(ctx, []string{addr})
	if err != nil {
		return err
	}
	defer s.Close()
	return s.EnsurePath(ctx, dir)
}

// processCPU returns the user+system CPU time this process has used (the
// clients and the counting proxy; not the ZooKeeper server).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// lkWarmUp runs n create/list/delete cycles so that the first sub-benchmark
// does not pay for a cold ZooKeeper JVM (the benchmark binary starts a fresh
// server).
func lkWarmUp(addr string, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := zkrecipes.Connect(ctx, []string{addr})
	if err != nil {
		return err
	}
	defer s.Close()
	dir := "/bench/warmup-" + time.Now().Format("150405.000000")
	if err := s.EnsurePath(ctx, dir); err != nil {
		return err
	}
	for range n {
		p, err := s.Create(ctx, dir+"/n-", nil, zkrecipes.EphemeralSequential)
		if err != nil {
			return err
		}
		if _, _, err := s.Children(ctx, dir); err != nil {
			return err
		}
		if err := s.Delete(ctx, p, -1); err != nil {
			return err
		}
	}
	return nil
}
