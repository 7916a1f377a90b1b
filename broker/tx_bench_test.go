package broker_test

import (
	"bufio"
	"fmt"
	"net"
	"testing"

	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/protocol"
)

// txPipeline runs n local transactions of msgs messages each (size bytes)
// over one connection, keeping up to window transactions in flight (1 =
// one round trip per transaction: BEGIN, the puts and COMMIT are sent
// together and the next transaction starts when the commit is answered).
// With msgs == 0 it sends plain puts instead, window of them in flight.
func txPipeline(b *testing.B, addr string, n, msgs, size, window int) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	sum := protocol.Checksum(data)
	sem := make(chan struct{}, window)
	done := make(chan error, 1)
	go func() { // reader: a slot frees when a commit (or plain put) reply arrives
		dec := protocol.NewReplyDecoder(protocol.Config{})
		rd := bufio.NewReaderSize(c, 256<<10)
		buf := make([]byte, 0, 256<<10)
		tmp := make([]byte, 128<<10)
		got := 0
		for got < n {
			k, err := rd.Read(tmp)
			if err != nil {
				done <- err
				return
			}
			buf = append(buf, tmp[:k]...)
			off := 0
			for {
				rep, m, err := dec.Decode(buf[off:])
				if err != nil {
					done <- err
					return
				}
				if m == 0 {
					break
				}
				off += m
				if rep.Code != 200 {
					done <- fmt.Errorf("reply %d: %s", rep.Code, rep.Body)
					return
				}
				if rep.Opaque == 1 {
					got++
					<-sem
				}
			}
			buf = append(buf[:0], buf[off:]...)
		}
		done <- nil
	}()
	w := bufio.NewWriterSize(c, 256<<10)
	var out []byte
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		default:
			w.Flush()
			sem <- struct{}{}
		}
		out = out[:0]
		if msgs == 0 {
			out = protocol.AppendPut(out, &protocol.PutRequest{Topic: "bench", Partition: 0, Checksum: sum, Data: data, OpaqueID: 1})
		} else {
			key := fmt.Sprintf("TX:bench:%d", i)
			out = protocol.AppendTransaction(out, &protocol.TransactionRequest{TxKey: key, SessionID: "bench", Type: protocol.TxBegin, OpaqueID: 0})
			for j := 0; j < msgs; j++ {
				out = protocol.AppendPut(out, &protocol.PutRequest{Topic: "bench", Partition: int32(j % 2), Checksum: sum, TxKey: key, Data: data, OpaqueID: 0})
			}
			out = protocol.AppendTransaction(out, &protocol.TransactionRequest{TxKey: key, SessionID: "bench", Type: protocol.TxCommitOnePhase, OpaqueID: 1})
		}
		w.Write(out)
	}
	w.Flush()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkTxCommit measures committed local transactions per second over
// one connection (group commit, 100-byte messages) against plain puts.
//
//	go test -run '^$' -bench TxCommit -benchtime 3000x ./broker/
func BenchmarkTxCommit(b *testing.B) {
	for _, c := range []struct{ msgs, window int }{{0, 1}, {1, 1}, {10, 1}, {0, 64}, {1, 64}, {10, 64}} {
		name := fmt.Sprintf("msgs=%d/window=%d", c.msgs, c.window)
		if c.msgs == 0 {
			name = fmt.Sprintf("plainput/window=%d", c.window)
		}
		b.Run(name, func(b *testing.B) {
			br := brokertest.Start(b, brokertest.Options{Partitions: 2})
			cpu0 := cpuTime()
			b.ResetTimer()
			txPipeline(b, br.Addr(), b.N, c.msgs, 100, c.window)
			b.StopTimer()
			secs := b.Elapsed().Seconds()
			if c.msgs == 0 {
				b.ReportMetric(float64(b.N)/secs, "msgs/s")
			} else {
				b.ReportMetric(float64(b.N)/secs, "tx/s")
				b.ReportMetric(float64(b.N*c.msgs)/secs, "msgs/s")
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
		})
	}
}
