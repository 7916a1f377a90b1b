package broker_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/protocol"
)

// rawPipeline keeps up to window puts in flight on one connection and
// counts replies; it is the cheapest possible client, so the numbers are the
// broker's (client and broker share this process and the machine's 2 cores).
func rawPipeline(b *testing.B, addr, topic string, part, n, size, window int) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Error(err)
		return
	}
	defer c.Close()
	rawPipelineOn(b, c, topic, part, 1, n, size, window)
}

// rawPipelineOn is rawPipeline on an established connection (plain or TLS),
// spreading the puts round-robin over partitions part..part+parts-1.
func rawPipelineOn(b *testing.B, c net.Conn, topic string, part, parts, n, size, window int) {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	req := protocol.PutRequest{Topic: topic, Partition: int32(part), Checksum: protocol.Checksum(data), Data: data}
	sem := make(chan struct{}, window)
	done := make(chan error, 1)
	go func() {
		r := protocol.NewReplyDecoder(protocol.Config{})
		buf := make([]byte, 0, 256<<10)
		tmp := make([]byte, 128<<10)
		got := 0
		for got < n {
			m, err := c.Read(tmp)
			if err != nil {
				done <- err
				return
			}
			buf = append(buf, tmp[:m]...)
			off := 0
			for {
				rep, k, err := r.Decode(buf[off:])
				if err != nil {
					done <- err
					return
				}
				if k == 0 {
					break
				}
				if rep.Code != 200 {
					done <- fmt.Errorf("put reply %d: %s", rep.Code, rep.Body)
					return
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
	out := make([]byte, 0, size+128)
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		default:
			w.Flush()
			sem <- struct{}{}
		}
		req.OpaqueID, req.Partition = int32(i), int32(part+i%parts)
		out = req.AppendTo(out[:0])
		w.Write(out)
	}
	w.Flush()
	if err := <-done; err != nil {
		b.Error(err)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPipelinedPut: group commit (ack after fsync), pipelined puts.
//
//	go test -run '^$' -bench PipelinedPut -benchtime 200000x ./broker/
func BenchmarkPipelinedPut(b *testing.B) {
	for _, multicore := range []bool{false, true} {
		for _, size := range []int{100, 1024} {
			for _, conns := range []int{1, 8} {
				name := fmt.Sprintf("size=%d/conns=%d/multicore=%v", size, conns, multicore)
				b.Run(name, func(b *testing.B) {
					br := brokertest.Start(b, brokertest.Options{Partitions: 8, Modify: func(o *broker.Options) { o.Multicore = multicore }})
					per := max(b.N/conns, 1)
					b.SetBytes(int64(size))
					b.ReportAllocs()
					cpu0 := cpuTime()
					b.ResetTimer()
					var wg sync.WaitGroup
					for i := 0; i < conns; i++ {
						wg.Add(1)
						go func(i int) { defer wg.Done(); rawPipeline(b, br.Addr(), "bench", i%8, per, size, 2048) }(i)
					}
					wg.Wait()
					b.StopTimer()
					total := per * conns
					b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "msgs/s")
					b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(total), "cpu-us/msg")
				})
			}
		}
	}
}

// BenchmarkPipelinedPutManyPartitions: group commit, 4 connections each
// spreading pipelined 100-byte puts round-robin over every partition (the
// shape of `metaq bench produce --partitions-spread`), broker in-process.
// allocs/op is per put, broker and raw client together.
//
//	go test -run '^$' -bench PipelinedPutManyPartitions -benchtime 200000x ./broker/
func BenchmarkPipelinedPutManyPartitions(b *testing.B) {
	for _, parts := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("partitions=%d", parts), func(b *testing.B) {
			br := brokertest.Start(b, brokertest.Options{Partitions: parts})
			const conns = 4
			for i := 0; i < parts; i++ { // create the partitions before measuring
				rawPipeline(b, br.Addr(), "bench", i, 1, 100, 1)
			}
			per := max(b.N/conns, 1)
			b.SetBytes(100)
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			var wg sync.WaitGroup
			for i := 0; i < conns; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := net.Dial("tcp", br.Addr())
					if err != nil {
						b.Error(err)
						return
					}
					defer c.Close()
					rawPipelineOn(b, c, "bench", 0, parts, per, 100, 4096)
				}()
			}
			wg.Wait()
			b.StopTimer()
			total := per * conns
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(total), "cpu-us/msg")
		})
	}
}

// BenchmarkGetCached reads a backlog that is in the page cache, 1 MiB per get,
// one get at a time on one connection. The broker checks every message's CRC
// before serving it; the client here only walks the headers.
func BenchmarkGetCached(b *testing.B) {
	br := brokertest.Start(b, brokertest.Options{Partitions: 1})
	const size, n = 1024, 64 * 1024 // 64 MiB + headers
	rawPipeline(b, br.Addr(), "getbench", 0, n, size, 4096)
	end := int64(n * (size + 20))
	c, err := net.Dial("tcp", br.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	rd := bufio.NewReaderSize(c, 64<<10)
	var off int64
	var total int64
	body := make([]byte, 2<<20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if off >= end {
			off = 0
		}
		fmt.Fprintf(c, "get getbench g 0 %d %d %d\r\n", off, 1<<20, i)
		line, err := rd.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		var n, op int
		if _, err := fmt.Sscanf(string(line), "value %d %d\r\n", &n, &op); err != nil {
			b.Fatalf("get at %d: %q", off, line)
		}
		if _, err := io.ReadFull(rd, body[:n]); err != nil { // large reads bypass bufio's buffer
			b.Fatal(err)
		}
		it := protocol.NewMessageIterator(body[:n])
		it.SkipChecksum() // the broker verified what it served; measure serving, not the client's CRC
		for it.Next() {
		}
		off += int64(it.Consumed())
		total += int64(n)
	}
	b.StopTimer()
	b.ReportMetric(float64(total)/b.Elapsed().Seconds()/1e6, "MB/s")
}

// BenchmarkPutLatencyAt20k sends 100-byte puts at a fixed 20,000/s on 4
// connections and reports the latency percentiles (send → 200 reply).
func BenchmarkPutLatencyAt20k(b *testing.B) {
	br := brokertest.Start(b, brokertest.Options{Partitions: 4})
	const rate, conns = 20000, 4
	n := max(b.N, rate) // at least one second of load
	per := n / conns
	lat := make([][]time.Duration, conns)
	b.ResetTimer()
	var wg sync.WaitGroup
	for ci := 0; ci < conns; ci++ {
		wg.Add(1)
		go func(ci int) {
			defer wg.Done()
			lat[ci] = pacedPuts(b, br.Addr(), ci%latParts, per, rate/conns)
		}(ci)
	}
	wg.Wait()
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) == 0 {
		return
	}
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-us")
	b.ReportMetric(float64(all[len(all)-1].Microseconds()), "max-us")
}

func pacedPuts(b *testing.B, addr string, part, n, rate int) []time.Duration {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Error(err)
		return nil
	}
	defer c.Close()
	data := make([]byte, 100)
	sent := make([]time.Time, n)
	lat := make([]time.Duration, 0, n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := protocol.NewReplyDecoder(protocol.Config{})
		buf := make([]byte, 0, 64<<10)
		tmp := make([]byte, 64<<10)
		for len(lat) < n {
			m, err := c.Read(tmp)
			if err != nil {
				return
			}
			now := time.Now()
			buf = append(buf, tmp[:m]...)
			off := 0
			for {
				rep, k, err := r.Decode(buf[off:])
				if err != nil || k == 0 {
					break
				}
				lat = append(lat, now.Sub(sent[rep.Opaque]))
				off += k
			}
			buf = append(buf[:0], buf[off:]...)
		}
	}()
	req := protocol.PutRequest{Topic: "lat", Partition: int32(part), Checksum: protocol.Checksum(data), Data: data}
	// Pace per 1 ms tick, sending that tick's share in one write, as a
	// producer with a small linger does; a timer per message would measure
	// the client's timer wake-ups rather than the broker.
	const tick = time.Millisecond
	start := time.Now()
	out := make([]byte, 0, 64<<10)
	for i := 0; i < n; {
		due := int(time.Since(start) * time.Duration(rate) / time.Second)
		if due <= i {
			time.Sleep(tick)
			continue
		}
		out = out[:0]
		now := time.Now()
		for ; i < min(due, n); i++ {
			req.OpaqueID = int32(i)
			out = req.AppendTo(out)
			sent[i] = now
		}
		c.Write(out)
	}
	<-done
	return lat
}

// latParts is how many partitions BenchmarkPutLatencyAt20k spreads its
// connections over (METAQ_BENCH_LAT_PARTS, default 4).
var latParts = func() int {
	if n, err := strconv.Atoi(os.Getenv("METAQ_BENCH_LAT_PARTS")); err == nil && n > 0 {
		return n
	}
	return 4
}()
