package producer_test

import (
	"context"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/producer"
	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

func TestMain(m *testing.M) { os.Exit(zktest.Main(m)) }

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var rootSeq struct {
	sync.Mutex
	n int
}

func uniqueRoot() string {
	rootSeq.Lock()
	defer rootSeq.Unlock()
	rootSeq.n++
	return "/p" + strconv.FormatInt(time.Now().UnixNano(), 36) + strconv.Itoa(rootSeq.n) + "/meta"
}

// zkCluster is brokers registered in the shared test ZooKeeper under a fresh root.
type zkCluster struct {
	zk, root string
}

func newZKCluster(t testing.TB) *zkCluster {
	return &zkCluster{zk: zktest.Shared(t).Addr, root: uniqueRoot()}
}

func (c *zkCluster) start(t testing.TB, id, parts int, topics ...string) *broker.Broker {
	return brokertest.Start(t, brokertest.Options{ZK: c.zk, ZKRoot: c.root, BrokerID: id, Partitions: parts,
		Modify: func(o *broker.Options) { o.Topics = topics }})
}

func (c *zkCluster) producer(t testing.TB, opts ...producer.Option) *producer.Producer {
	t.Helper()
	p, err := producer.New(testCtx(t, 30*time.Second), append([]producer.Option{producer.WithZooKeeper([]string{c.zk}, c.root)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// readBack reads every message of one partition with raw gets.
func readBack(t testing.TB, addr, topic string, part int) []protocol.Message {
	t.Helper()
	ctx := testCtx(t, 20*time.Second)
	c, err := conn.Dial(ctx, addr, conn.Options{})
	require.NoError(t, err)
	defer c.Close()
	var out []protocol.Message
	off := int64(0)
	for {
		rep, err := c.Get(ctx, &protocol.GetRequest{Topic: topic, Group: "readback", Partition: int32(part), Offset: off, MaxSize: 1 << 20})
		require.NoError(t, err)
		if rep.Verb == protocol.VerbResult {
			require.EqualValues(t, protocol.CodeNotFound, rep.Code, string(rep.Body))
			return out
		}
		it := protocol.NewMessageIterator(rep.Body)
		for it.Next() {
			m := it.Message()
			m.Offset += off
			m.Data = append([]byte(nil), m.Data...)
			out = append(out, m)
		}
		require.NoError(t, it.Err())
		off += int64(it.Consumed())
	}
}

// goroutineBaseline returns a check that, after everything the test started
// since is closed, the goroutine count comes back (polling, no fixed sleep).
func goroutineBaseline(t testing.TB) func() {
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Fatalf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), before, buf)
			}
			time.Sleep(time.Millisecond) // poll interval
		}
	}
}

// silentBroker accepts connections and reads requests but never answers.
func silentBroker(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
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
				buf := make([]byte, 64<<10)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// collector counts callbacks.
type collector struct {
	mu      sync.Mutex
	results map[int]producer.Result
	errs    map[int]error
	calls   map[int]int
	wg      sync.WaitGroup
}

func newCollector() *collector {
	return &collector{results: map[int]producer.Result{}, errs: map[int]error{}, calls: map[int]int{}}
}

func (c *collector) cb(i int) func(producer.Result, error) {
	c.wg.Add(1)
	return func(r producer.Result, err error) {
		c.mu.Lock()
		c.calls[i]++
		if err != nil {
			c.errs[i] = err
		} else {
			c.results[i] = r
		}
		c.mu.Unlock()
		c.wg.Done()
	}
}

// sendAllAcked sends n messages to topic with SendAsync, flushes within d
// and requires every one acknowledged.
func sendAllAcked(t testing.TB, p *producer.Producer, topic string, n int, d time.Duration) {
	t.Helper()
	ctx := testCtx(t, d)
	col := newCollector()
	for i := 0; i < n; i++ {
		p.SendAsync(ctx, producer.Message{Topic: topic, Payload: []byte("x")}, col.cb(i))
	}
	require.NoError(t, p.Flush(ctx))
	col.wait(t, 5*time.Second)
	col.mu.Lock()
	defer col.mu.Unlock()
	for i, err := range col.errs {
		t.Fatalf("message %d failed: %v", i, err)
	}
	require.Len(t, col.results, n)
}

func (c *collector) wait(t testing.TB, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("callbacks missing after %v", d)
	}
}

// startDirectBroker starts a broker without ZooKeeper and returns its address.
func startDirectBroker(t testing.TB, parts int) string {
	return brokertest.Start(t, brokertest.Options{Partitions: parts}).Addr()
}
