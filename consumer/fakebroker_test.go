package consumer_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/consumer"
	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/protocol"
)

// fakeBroker behaves like a plain MetaQ broker for gets: no long polls, a
// reply is cut at maxSize even in the middle of a message, and data is
// served as stored, without checking CRCs. Registered in ZooKeeper like a
// real broker.
type fakeBroker struct {
	t        testing.TB
	ln       net.Listener
	mu       sync.Mutex // guards logs
	logs     map[int][]byte
	gets     atomic.Int64
	longPoll atomic.Int64 // gets that carried maxWaitMs (a MetaQ broker would reject them)
	wg       sync.WaitGroup
	done     chan struct{}
}

func startFake(t testing.TB, e *env, id int, topic string, parts int) *fakeBroker {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &fakeBroker{t: t, ln: ln, logs: map[int][]byte{}, done: make(chan struct{})}
	f.wg.Add(1)
	go f.accept()
	s := e.session()
	reg := coordinator.NewRegistrar(s, coordinator.NewPaths(e.root),
		coordinator.BrokerInfo{ID: id, URI: "meta://" + ln.Addr().String()}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, reg.Start(ctx, []coordinator.TopicRegistration{{Topic: topic, NumPartitions: parts, AcceptPublish: true, AcceptSubscribe: true}}))
	t.Cleanup(func() {
		_ = reg.Close(context.Background())
		close(f.done)
		_ = ln.Close()
		f.wg.Wait()
	})
	return f
}

// append adds a message (corrupt: with a wrong checksum) and returns its offset.
func (f *fakeBroker) append(part int, id int64, payload []byte, corrupt bool) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	off := int64(len(f.logs[part]))
	sum := protocol.Checksum(payload)
	if corrupt {
		sum ^= 0x55
	}
	f.logs[part] = protocol.AppendMessageWithChecksum(f.logs[part], sum, id, 0, payload)
	return off
}

func (f *fakeBroker) accept() {
	defer f.wg.Done()
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go f.serve(nc)
	}
}

func (f *fakeBroker) serve(nc net.Conn) {
	defer f.wg.Done()
	defer nc.Close()
	go func() { // end the connection when the listener closes
		<-f.done
		nc.Close()
	}()
	dec := protocol.NewDecoder(protocol.Config{})
	var buf []byte
	tmp := make([]byte, 64<<10)
	for {
		n, err := nc.Read(tmp)
		if err != nil {
			return
		}
		buf = append(buf, tmp[:n]...)
		for {
			req, used, err := dec.Decode(buf)
			if err != nil {
				return
			}
			if used == 0 {
				break
			}
			out := f.reply(req)
			buf = buf[used:]
			if len(out) > 0 {
				if _, err := nc.Write(out); err != nil {
					return
				}
			}
		}
	}
}

func (f *fakeBroker) reply(req protocol.Request) []byte {
	switch r := req.(type) {
	case *protocol.VersionRequest:
		return protocol.AppendResultString(nil, protocol.CodeOK, r.OpaqueID, "metaq-1.4.6-fake")
	case *protocol.GetRequest:
		f.gets.Add(1)
		if r.MaxWaitMs > 0 {
			f.longPoll.Add(1)
		}
		f.mu.Lock()
		log := f.logs[int(r.Partition)]
		f.mu.Unlock()
		if r.Offset >= int64(len(log)) {
			return protocol.AppendResultString(nil, protocol.CodeNotFound, r.OpaqueID, "no data")
		}
		end := min(int64(len(log)), r.Offset+int64(r.MaxSize))
		return protocol.AppendValue(nil, r.OpaqueID, log[r.Offset:end])
	case *protocol.OffsetRequest:
		f.mu.Lock()
		n := int64(len(f.logs[int(r.Partition)]))
		f.mu.Unlock()
		return protocol.AppendResultString(nil, protocol.CodeOK, r.OpaqueID, fmt.Sprint(min(max(r.Offset, 0), n)))
	}
	return protocol.AppendResultString(nil, protocol.CodeBadRequest, req.Opaque(), "unsupported")
}

// Scenario: a MetaQ broker (no long poll, replies cut mid-message): a
// message larger than the fetch size is fetched by growing it; a message
// produced later into the idle partition arrives within the back-off cap.
func TestMetaQBrokerFetchSizeGrowthAndBackoff(t *testing.T) {
	e := newEnv(t, 0, 0)
	f := startFake(t, e, 7, "big", 1)
	small := []byte("small-1")
	large := []byte(strings.Repeat("L", 100<<10))
	f.append(0, 1, small, false)
	f.append(0, 2, large, false)
	f.append(0, 3, []byte("small-2"), false)
	got := make(chan *consumer.Message, 10)
	c := newConsumer(t, "gf", e.opts(consumer.WithMaxFetchBytes(1024))...)
	require.NoError(t, c.Subscribe("big", func(ctx context.Context, m *consumer.Message) error {
		got <- m
		return nil
	}))
	start(t, c)
	recv := func() *consumer.Message {
		select {
		case m := <-got:
			return m
		case <-time.After(20 * time.Second):
			t.Fatal("no message")
			return nil
		}
	}
	require.Equal(t, small, recv().Payload)
	m := recv()
	require.Equal(t, len(large), len(m.Payload))
	require.Equal(t, large, m.Payload)
	require.Equal(t, []byte("small-2"), recv().Payload)
	st := c.Stats()
	require.GreaterOrEqual(t, st.FetchGrowths, int64(1))
	require.Len(t, st.Partitions, 1)
	require.False(t, st.Partitions[0].LongPoll)
	// Idle partition: let the back-off grow, then produce one message.
	g0 := f.gets.Load()
	eventually(t, 10*time.Second, "back-off reached", func() bool { return f.gets.Load()-g0 >= 8 })
	t0 := time.Now()
	f.append(0, 4, []byte("late"), false)
	require.Equal(t, []byte("late"), recv().Payload)
	lat := time.Since(t0)
	require.Zero(t, f.longPoll.Load(), "long-poll gets sent to a broker without the capability")
	t.Logf("MetaQ-style broker (no long poll): idle-partition delivery latency %v (back-off cap 1s); %d gets", lat, f.gets.Load())
}

// Scenario: a message with a bad CRC (served as is by a broker that does not
// check) is never delivered; the partition stops at it with the error in
// Stats; the messages before it are delivered and committed.
func TestCorruptMessageNeverDelivered(t *testing.T) {
	e := newEnv(t, 0, 0)
	f := startFake(t, e, 8, "crc", 1)
	f.append(0, 1, []byte("good-1"), false)
	bad := f.append(0, 2, []byte("bad"), true)
	f.append(0, 3, []byte("good-after"), false)
	var mu sync.Mutex
	var got []string
	c := newConsumer(t, "gc", e.opts()...)
	require.NoError(t, c.Subscribe("crc", func(ctx context.Context, m *consumer.Message) error {
		mu.Lock()
		got = append(got, string(m.Payload))
		mu.Unlock()
		return nil
	}))
	start(t, c)
	eventually(t, 20*time.Second, "checksum error reported", func() bool {
		st := c.Stats()
		return st.ChecksumErrors >= 1 && len(st.Partitions) == 1 && strings.Contains(st.Partitions[0].Err, "corrupt")
	})
	eventually(t, 10*time.Second, "committed up to the corrupt message", func() bool {
		return e.committed("gc", consumer.TopicPartition{Topic: "crc", BrokerID: 8, Partition: 0}) == bad
	})
	st := c.Stats()
	require.Equal(t, bad, st.Partitions[0].FetchOffset)
	mu.Lock()
	require.Equal(t, []string{"good-1"}, got)
	mu.Unlock()
	t.Logf("partition error: %s", st.Partitions[0].Err)
}
