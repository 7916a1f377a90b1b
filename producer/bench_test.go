package producer_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
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
			cpu0 := cpuTime()
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
			reportRate(b, cpu0)
			st := p.Stats()
			b.ReportMetric(float64(st.LatencyP99.Microseconds()), "p99-µs")
		})
	}
}

// fakeBroker is an allocation-free in-process broker that acknowledges every
// put at once (no storage), to measure the client alone. With verdict, each
// put is answered with the code it returns (CodeOK: acknowledged) or, for
// hangUp, the connection is closed without answering the puts of that read.
func fakeBroker(b testing.TB, verdict func() int32) string {
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
				serveFake(c, verdict)
			}()
		}
	}()
	return ln.Addr().String()
}

// hangUp is the verdict that closes a fake broker's connection.
const hangUp = -1

func serveFake(c net.Conn, verdict func() int32) {
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
			code := int32(protocol.CodeOK)
			if verdict != nil {
				code = verdict()
			}
			put, ok := req.(*protocol.PutRequest)
			switch {
			case code == hangUp:
				_ = c.Close()
				return
			case ok && code != protocol.CodeOK:
				out = protocol.AppendResultString(out, code, put.OpaqueID, "refused")
			case ok:
				p := put.Partition & 63
				out = protocol.AppendPutResult(out, put.OpaqueID, 1, put.Partition, offsets[p])
				offsets[p] += int64(protocol.MessageHeaderSize + len(put.Data))
			default:
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
// broker that acknowledges at once: allocs/op are the client's; cpu-ns/msg
// includes the fake broker's (one decode and one reply line per put).
func BenchmarkSendAsyncClientOnly(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			p, err := producer.New(context.Background(), producer.WithBroker(fakeBroker(b, nil), 4))
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
			cpu0 := cpuTime()
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
			reportRate(b, cpu0)
		})
	}
}

// reportRate reports msgs/s and the process's CPU time per message since
// cpu0 (one op is one message, so allocs/op is allocations per message).
func reportRate(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/msg")
}

// cpuTime is this process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkProducerVsRaw compares the producer with a raw pipelined client
// (bufio writer, a window of puts in flight, replies counted by a reader
// goroutine: the least a client can do) on the same kind of broker: one
// connection, one partition, 100-byte messages, 4096 in flight,
// acknowledged after fsync. The ratio of the two msgs/s is the producer's
// efficiency. By default the broker runs in this process and cpu-ns/msg
// includes it; with METAQ_BENCH_BROKER=host:port (a `metaq broker` serving
// topic "bench" with one partition, as scripts/bench-producer-vs-raw.sh
// starts one) cpu-ns/msg is the client's alone.
//
//	go test -run '^$' -bench ProducerVsRaw -benchtime 300000x -count 3 ./producer/
//	scripts/bench-producer-vs-raw.sh     (alternating pairs, external broker, medians)
func BenchmarkProducerVsRaw(b *testing.B) {
	const size, window = 100, 4096
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	run := func(b *testing.B, send func(addr string)) {
		addr := os.Getenv("METAQ_BENCH_BROKER")
		if addr == "" {
			addr = startDirectBroker(b, 1)
		}
		send(addr) // warm-up: the partition's files, the connection
		b.ReportAllocs()
		cpu0 := cpuTime()
		b.ResetTimer()
		send(addr)
		b.StopTimer()
		reportRate(b, cpu0)
	}
	b.Run("raw", func(b *testing.B) {
		run(b, func(addr string) { rawPipeline(b, addr, payload, b.N, window) })
	})
	b.Run("producer", func(b *testing.B) {
		var p *producer.Producer
		run(b, func(addr string) {
			if p == nil {
				var err error
				p, err = producer.New(context.Background(), producer.WithBroker(addr, 1), producer.WithMaxInFlight(window))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { p.Close(context.Background()) })
			}
			ctx := context.Background()
			cb := func(_ producer.Result, err error) {
				if err != nil {
					b.Error(err)
				}
			}
			for i := 0; i < b.N; i++ {
				p.SendAsync(ctx, producer.Message{Topic: "bench", Payload: payload}, cb)
			}
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// rawPipeline sends n puts of data to partition 0 of "bench" on one
// connection with up to window in flight and waits for every reply.
func rawPipeline(b *testing.B, addr string, data []byte, n, window int) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	sem := make(chan struct{}, window)
	done := make(chan error, 1)
	go func() {
		dec := protocol.NewReplyDecoder(protocol.Config{})
		buf := make([]byte, 0, 256<<10)
		tmp := make([]byte, 128<<10)
		for got := 0; got < n; {
			m, err := c.Read(tmp)
			if err != nil {
				done <- err
				return
			}
			buf = append(buf, tmp[:m]...)
			off := 0
			for {
				rep, k, err := dec.Decode(buf[off:])
				if err != nil || (k > 0 && rep.Code != protocol.CodeOK) {
					done <- fmt.Errorf("put reply: %v %v", err, rep)
					return
				}
				if k == 0 {
					break
				}
				off += k
				got++
				<-sem
			}
			buf = append(buf[:0], buf[off:]...)
		}
		done <- nil
	}()
	w := bufio.NewWriterSize(c, 256<<10)
	req := protocol.PutRequest{Topic: "bench", Checksum: protocol.Checksum(data), Data: data}
	out := make([]byte, 0, len(data)+128)
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		default:
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			sem <- struct{}{}
		}
		req.OpaqueID = int32(i)
		out = req.AppendTo(out[:0])
		_, _ = w.Write(out)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
