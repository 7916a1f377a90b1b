package producer_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/metaq-go/metaq/producer"
)

// BenchmarkTx measures committed transactions per second through the
// producer API against an in-process broker (one transaction at a time:
// sends pipelined with SendAsync, then Commit, which waits for the
// COMMIT record's fsync and the per-partition appends), next to plain
// sends of the same messages (SendAsync of the batch, then Flush).
func BenchmarkTx(b *testing.B) {
	payload := make([]byte, 100)
	for _, per := range []int{1, 10} {
		b.Run(fmt.Sprintf("tx/msgs=%d", per), func(b *testing.B) {
			addr := startDirectBroker(b, 4)
			p, err := producer.New(context.Background(), producer.WithBroker(addr, 4))
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			ctx := context.Background()
			var failed atomic.Int64
			cb := func(_ producer.Result, err error) {
				if err != nil {
					failed.Add(1)
				}
			}
			run := func() {
				tx, err := p.Begin(ctx, producer.TxOptions{Topic: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				for j := 0; j < per; j++ {
					tx.SendAsync(ctx, producer.Message{Topic: "bench", Payload: payload}, cb)
				}
				if err := tx.Commit(ctx); err != nil {
					b.Fatal(err)
				}
			}
			run() // warm up
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run()
			}
			b.StopTimer()
			if failed.Load() > 0 {
				b.Fatalf("%d sends failed", failed.Load())
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
			b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "msgs/s")
		})
		b.Run(fmt.Sprintf("plain/msgs=%d", per), func(b *testing.B) {
			addr := startDirectBroker(b, 4)
			p, err := producer.New(context.Background(), producer.WithBroker(addr, 4))
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			ctx := context.Background()
			var failed atomic.Int64
			cb := func(_ producer.Result, err error) {
				if err != nil {
					failed.Add(1)
				}
			}
			run := func() {
				for j := 0; j < per; j++ {
					p.SendAsync(ctx, producer.Message{Topic: "bench", Payload: payload}, cb)
				}
				if err := p.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
			run()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run()
			}
			b.StopTimer()
			if failed.Load() > 0 {
				b.Fatalf("%d sends failed", failed.Load())
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
			b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
