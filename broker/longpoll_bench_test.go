package broker_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker/brokertest"
)

// BenchmarkLongPollWake: one message at a time, the time from a put's send
// to the reply of a long-poll get parked at the partition's end (the put's
// fsync, the commit cycle's notify, the read and the reply; one connection
// each, in process). Reports the median and p99 in µs, and those of the
// put's own acknowledgement (the same fsync, the reply on the producer's
// connection): the difference is what the long-poll path adds.
//
//	go test -run '^$' -bench LongPollWake -benchtime 2000x ./broker/
func BenchmarkLongPollWake(b *testing.B) {
	br := brokertest.Start(b, brokertest.Options{Partitions: 1})
	p := brokertest.Dial(b, br.Addr())
	c := brokertest.Dial(b, br.Addr())
	p.Send(b, putLine("wake", 0, "first", 1))
	p.ReadReply(b)
	off := int64(25) // after "first" (20 bytes of header)
	lat := make([]time.Duration, 0, b.N)
	ack := make([]time.Duration, 0, b.N)
	acked := make(chan time.Duration, 1)
	b.ResetTimer()
	for i := range b.N {
		c.Send(b, fmt.Sprintf("get wake g 0 %d 1024 20000 %d\r\n", off, i))
		time.Sleep(2 * time.Millisecond) // let the get park (not timed; before this branch LongPollParked stayed true after a wake)
		t0 := time.Now()
		p.Send(b, putLine("wake", 0, "x", i))
		go func() { // the producer's acknowledgement, timed on its own
			_, _, err := p.TryReadReply(10 * time.Second)
			if err != nil {
				b.Error(err)
			}
			acked <- time.Since(t0)
		}()
		_, body := c.ReadReply(b)
		lat = append(lat, time.Since(t0))
		ack = append(ack, <-acked)
		off += int64(len(body))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	slices.Sort(ack)
	b.ReportMetric(float64(ack[len(ack)/2].Microseconds()), "ack-p50-µs")
	b.ReportMetric(float64(ack[len(ack)*99/100].Microseconds()), "ack-p99-µs")
}
