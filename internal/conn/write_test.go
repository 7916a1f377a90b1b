package conn_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// stalledBroker accepts one connection, reads nothing until release is
// closed, then answers every put in order, checking that the puts arrive
// whole (valid checksum) and, per sender, in order: their first 8 bytes are
// sender<<32 | sequence number. Problems go to errs.
func stalledBroker(t *testing.T, release <-chan struct{}, errs chan<- error) string {
	return serveConns(t, func(nc net.Conn) {
		<-release
		dec := protocol.NewDecoder(protocol.Config{})
		buf := make([]byte, 4<<20)
		var out []byte
		start, end := 0, 0
		next := map[uint64]uint64{} // sender → next sequence number
		for {
			n, err := nc.Read(buf[end:])
			if err != nil {
				return
			}
			end += n
			out = out[:0]
			for {
				req, used, derr := dec.Decode(buf[start:end])
				if derr != nil {
					errs <- derr
					return
				}
				if used == 0 {
					break
				}
				start += used
				put, ok := req.(*protocol.PutRequest)
				switch {
				case !ok:
					out = protocol.AppendResultString(out, protocol.CodeOK, req.Opaque(), "ok")
					continue
				case protocol.Checksum(put.Data) != put.Checksum:
					errs <- fmt.Errorf("put with opaque %d: bad checksum", put.OpaqueID)
				default:
					id := binary.BigEndian.Uint64(put.Data)
					if sender, seq := id>>32, id&(1<<32-1); seq != next[sender] {
						errs <- fmt.Errorf("sender %d: put %d arrived after %d", sender, seq, next[sender])
					} else {
						next[sender]++
					}
				}
				out = protocol.AppendPutResult(out, put.OpaqueID, 1, put.Partition, 0)
			}
			if _, err := nc.Write(out); err != nil {
				return
			}
			copy(buf, buf[start:end])
			end -= start
			start = 0
		}
	})
}

// Scenario: a broker that does not read while 16 MiB of puts are queued,
// from several goroutines, on an idle connection. The first writes are
// made by the callers themselves (inline), until the socket buffer is full;
// the rest of a frame the socket did not take and everything queued after
// it goes through the writer goroutine once the broker reads again. Every
// frame arrives whole, each goroutine's in the order it queued them, and
// every reply reaches its handler.
func TestInlineWritesFallBackToTheWriterWhenTheSocketIsFull(t *testing.T) {
	release := make(chan struct{})
	errs := make(chan error, 16)
	addr := stalledBroker(t, release, errs)
	c := dial(t, addr, conn.Options{HeartbeatInterval: -1})
	const senders, per, size = 8, 16, 128 << 10
	var wg sync.WaitGroup
	wg.Add(senders * per)
	h := &countHandler{got: map[string]int{}, wg: &wg}
	var started sync.WaitGroup
	for s := 0; s < senders; s++ {
		started.Add(1)
		go func() {
			defer started.Done()
			for i := 0; i < per; i++ {
				data := make([]byte, size)
				binary.BigEndian.PutUint64(data, uint64(s)<<32|uint64(i))
				err := c.Start(conn.ProtocolRequest(&protocol.PutRequest{Topic: "t", Checksum: protocol.Checksum(data), Data: data}), h)
				if err != nil {
					t.Error(err)
					wg.Done()
				}
			}
		}()
	}
	started.Wait() // Start never blocks, even with the socket full
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.Zero(t, h.errs)
	require.Equal(t, senders*per, h.got["200"])
}
