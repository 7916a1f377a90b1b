package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker/store"
)

// asyncAppender appends from one goroutine without waiting for each ack.
type asyncAppender struct {
	failed atomic.Int64
	done   func(store.AppendResult, error)
}

func newAsyncAppender() *asyncAppender {
	a := &asyncAppender{}
	a.done = func(_ store.AppendResult, err error) {
		if err != nil {
			a.failed.Add(1)
		}
	}
	return a
}

func (a *asyncAppender) run(b *testing.B, p *store.Partition, msg []byte) {
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		for {
			err := p.Append(msg, 0, a.done)
			if err == nil {
				break
			}
			if !errors.Is(err, store.ErrQueueFull) {
				b.Fatal(err)
			}
			if err := p.Flush(ctx); err != nil { // back-pressure: wait for the queue to drain
				b.Fatal(err)
			}
		}
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if n := a.failed.Load(); n > 0 {
		b.Fatalf("%d appends failed", n)
	}
}

func benchStore(b *testing.B, opts store.Options) *store.Store {
	opts.RetentionInterval = -1
	s, err := store.Open(filepath.Join(b.TempDir(), "data"), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func msgsPerSec(b *testing.B, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkAppendThreshold1KiB: one appender, threshold flush mode.
func BenchmarkAppendThreshold1KiB(b *testing.B) {
	s := benchStore(b, store.Options{Flush: store.FlushPolicy{Mode: store.Threshold}})
	p := mustPart(b, s, "bench", 0)
	msg := make([]byte, 1024)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	newAsyncAppender().run(b, p, msg)
	msgsPerSec(b, b.N)
}

// BenchmarkAppendThreshold100B: one appender, 100-byte messages.
func BenchmarkAppendThreshold100B(b *testing.B) {
	s := benchStore(b, store.Options{Flush: store.FlushPolicy{Mode: store.Threshold}})
	p := mustPart(b, s, "bench", 0)
	msg := make([]byte, 100)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	newAsyncAppender().run(b, p, msg)
	msgsPerSec(b, b.N)
}

// BenchmarkAppendGroupCommit1KiB64: 64 concurrent synchronous appenders,
// ack after fsync.
func BenchmarkAppendGroupCommit1KiB64(b *testing.B) {
	cnt := &syncCounter{FS: store.OSFS{}}
	s := benchStore(b, store.Options{FS: cnt})
	p := mustPart(b, s, "bench", 0)
	msg := make([]byte, 1024)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.SetParallelism(64 / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := p.AppendSync(ctx, msg, 0); err != nil {
				b.Error(err)
				return
			}
		}
	})
	msgsPerSec(b, b.N)
	b.ReportMetric(float64(b.N)/float64(cnt.syncs), "msgs/fsync")
}

// BenchmarkAppendGroupCommit1KiB1: one synchronous appender (latency bound:
// one fsync per message).
func BenchmarkAppendGroupCommit1KiB1(b *testing.B) {
	s := benchStore(b, store.Options{})
	p := mustPart(b, s, "bench", 0)
	msg := make([]byte, 1024)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.AppendSync(context.Background(), msg, 0); err != nil {
			b.Fatal(err)
		}
	}
	msgsPerSec(b, b.N)
}

// BenchmarkReadCached reads a 64 MiB partition of 1 KiB messages from the
// page cache in 1 MiB slices into a reused buffer, with and without the CRC
// check.
func BenchmarkReadCached(b *testing.B) {
	for _, verify := range []bool{true, false} {
		b.Run(fmt.Sprintf("verify=%v", verify), func(b *testing.B) {
			s := benchStore(b, store.Options{NoVerifyReads: !verify, Flush: store.FlushPolicy{Mode: store.Threshold}})
			p := mustPart(b, s, "bench", 0)
			b.StopTimer()
			newAsyncAppenderN(b, p, 1024, 64<<10)
			buf := make([]byte, 0, 2<<20)
			b.SetBytes(1 << 20)
			b.ReportAllocs()
			b.StartTimer()
			off := int64(0)
			for i := 0; i < b.N; i++ {
				sl, err := p.Read(off, 1<<20)
				if errors.Is(err, store.ErrCaughtUp) {
					off = 0
					sl, err = p.Read(off, 1<<20)
				}
				if err != nil {
					b.Fatal(err)
				}
				if buf, err = sl.ReadAll(buf[:0]); err != nil {
					b.Fatal(err)
				}
				off += int64(wholeMessages(buf))
				sl.Release()
			}
		})
	}
}

func newAsyncAppenderN(b *testing.B, p *store.Partition, size, n int) {
	msg := make([]byte, size)
	a := newAsyncAppender()
	for i := 0; i < n; i++ {
		for {
			err := p.Append(msg, 0, a.done)
			if err == nil {
				break
			}
			if !errors.Is(err, store.ErrQueueFull) {
				b.Fatal(err)
			}
			p.Flush(context.Background())
		}
	}
	if err := p.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRecoveryScan512MiB opens a partition whose 512 MiB active
// segment (1 KiB messages) must be scanned (no clean marker). The segment is
// in the page cache after the first run.
func BenchmarkRecoveryScan512MiB(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "data")
	pdir := filepath.Join(dir, "t-0")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		b.Fatal(err)
	}
	var chunk []byte
	for len(chunk) < 4<<20 {
		chunk = store.AppendMessage(chunk, 1<<22, 0, make([]byte, 1004))
	}
	f, err := os.Create(filepath.Join(pdir, "00000000000000000000.meta"))
	if err != nil {
		b.Fatal(err)
	}
	var size int64
	for size < 512<<20 {
		n, err := f.Write(chunk)
		if err != nil {
			b.Fatal(err)
		}
		size += int64(n)
	}
	f.Close()
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		os.Remove(filepath.Join(pdir, "CLEAN"))
		s, err := store.Open(dir, store.Options{RetentionInterval: -1})
		if err != nil {
			b.Fatal(err)
		}
		p := mustPart(b, s, "t", 0)
		if p.End() != size {
			b.Fatalf("recovered %d of %d bytes", p.End(), size)
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
}

// BenchmarkPartitions: 64 synchronous appenders (group commit, 100-byte
// messages) spread over 1, 100 or 1000 partitions.
//
// log=off is the same without the commit log (cycles sync their segments:
// syncfs from 4 partitions on), for the comparison in docs/BENCHMARKS.md.
func BenchmarkPartitions(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		for _, off := range []bool{false, true} {
			name := fmt.Sprintf("partitions=%d", n)
			if off {
				name += "/log=off"
			}
			b.Run(name, func(b *testing.B) { benchPartitions(b, n, store.Options{NoCommitLog: off}) })
		}
	}
}

func benchPartitions(b *testing.B, n int, opts store.Options) {
	s := benchStore(b, opts)
	parts := make([]*store.Partition, n)
	for i := range parts {
		parts[i] = mustPart(b, s, "bench", i)
	}
	msg := make([]byte, 100)
	var next atomic.Int64
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.SetParallelism(64 / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			p := parts[next.Add(1)%int64(n)]
			if _, err := p.AppendSync(ctx, msg, 0); err != nil {
				b.Error(err)
				return
			}
		}
	})
	msgsPerSec(b, b.N)
}

// BenchmarkPartitionMemory opens 1000 partitions and reports the memory
// (heap + goroutine stacks) each costs while idle.
func BenchmarkPartitionMemory(b *testing.B) {
	const n = 1000
	for i := 0; i < b.N; i++ {
		s := benchStore(b, store.Options{})
		before := memInUse()
		var wg sync.WaitGroup
		for j := 0; j < n; j++ {
			p := mustPart(b, s, fmt.Sprintf("t%d", i), j)
			wg.Add(1)
			p.Append([]byte("x"), 0, func(store.AppendResult, error) { wg.Done() })
		}
		wg.Wait()
		time.Sleep(0) // let writers park
		b.ReportMetric(float64(memInUse()-before)/n, "B/partition")
		s.Close()
	}
}

func memInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}

// wholeMessages returns the length of the complete messages at the start of
// b (headers only, no CRC).
func wholeMessages(b []byte) int {
	n := 0
	for len(b)-n >= store.HeaderSize {
		l := store.HeaderSize + int(store.ParseHeader(b[n:]).Len)
		if n+l > len(b) {
			break
		}
		n += l
	}
	return n
}

// BenchmarkAppendGroupCommit1KiBPipelined: ack after fsync, one goroutine
// keeping up to 4096 appends in flight (what a network layer with many
// pipelined producers does).
func BenchmarkAppendGroupCommit1KiBPipelined(b *testing.B) {
	cnt := &syncCounter{FS: store.OSFS{}}
	s := benchStore(b, store.Options{FS: cnt})
	p := mustPart(b, s, "bench", 0)
	msg := make([]byte, 1024)
	sem := make(chan struct{}, 4096)
	var failed atomic.Int64
	done := func(_ store.AppendResult, err error) {
		if err != nil {
			failed.Add(1)
		}
		<-sem
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sem <- struct{}{}
		if err := p.Append(msg, 0, done); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	msgsPerSec(b, b.N)
	b.ReportMetric(float64(b.N)/float64(cnt.syncs), "msgs/fsync")
	if failed.Load() > 0 {
		b.Fatal("appends failed")
	}
}
