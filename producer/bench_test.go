package producer_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metaq-go/metaq/producer"
	"github.com/metaq-go/metaq/protocol"
)

// BenchmarkSendAsync measures the async produce path against an in-process
// broker (brokertest: direct mode, group commit, acknowledged after fsync).
// allocs/op counts both sides: the producer and the in-process broker.
func BenchmarkSendAsync(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
	}{{"100B", 100}, {"1KiB", 1024}} {
		b.Run(bc.name, func(b *testing.B) {
			addr := startDirectBroker(b, 4)
			p, err := producer.New(context.Background(), producer.WithBroker(addr, 4))
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			ctx := context.Background()
			payload := make([]byte, bc.size)
			var failed atomic.Int64
			cb := func(_ producer.Result, err error) {
				if err != nil {
					failed.Add(1)
				}
			}
			// Warm up the connection and the pools.
			if _, err := p.Send(ctx, producer.Message{Topic: "bench", Payload: payload}); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p.SendAsync(ctx, producer.Message{Topic: "bench", Payload: payload}, cb)
			}
			fctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if err := p.Flush(fctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if failed.Load() > 0 {
				b.Fatalf("%d sends failed", failed.Load())
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			st := p.Stats()
			b.ReportMetric(float64(st.LatencyP99.Microseconds()), "p99-µs")
		})
	}
}

// fakeBroker is an allocation-free in-process broker that acknowledges every
// put at once (no storage), to measure the client alone.
func fakeBroker(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveFake(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func serveFake(c net.Conn) {
	dec := protocol.NewDecoder(protocol.Config{})
	buf := make([]byte, 1<<20)
	var out []byte
	start, end := 0, 0
	var offsets [64]int64
	for {
		n, err := c.Read(buf[end:])
		if err != nil {
			return
		}
		end += n
		out = out[:0]
		for {
			req, used, derr := dec.Decode(buf[start:end])
			if derr != nil || used == 0 {
				break
			}
			start += used
			if put, ok := req.(*protocol.PutRequest); ok {
				p := put.Partition & 63
				out = protocol.AppendPutResult(out, put.OpaqueID, 1, put.Partition, offsets[p])
				offsets[p] += int64(protocol.MessageHeaderSize + len(put.Data))
			} else {
				out = protocol.AppendResultString(out, protocol.CodeOK, req.Opaque(), "fake")
			}
		}
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
		copy(buf, buf[start:end])
		end -= start
		start = 0
		if end == len(buf) {
			return // a frame larger than the buffer: not used by this benchmark
		}
	}
}

// BenchmarkSendAsyncClientOnly measures the producer alone against a fake
// broker that acknowledges at once: allocs/op are the client's.
func BenchmarkSendAsyncClientOnly(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			p, err := producer.New(context.Background(), producer.WithBroker(fakeBroker(b), 4))
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			ctx := context.Background()
			payload := make([]byte, size)
			cb := func(producer.Result, error) {}
			if _, err := p.Send(ctx, producer.Message{Topic: "bench", Payload: payload}); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p.SendAsync(ctx, producer.Message{Topic: "bench", Payload: payload}, cb)
			}
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if st := p.Stats(); st.Failed > 0 {
				b.Fatalf("%d failed", st.Failed)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
