package consumer_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/consumer"
	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

func TestMain(m *testing.M) { os.Exit(zktest.Main(m)) }

// env is a ZooKeeper root with brokers registered under it.
type env struct {
	t       testing.TB
	zk      string
	root    string
	brokers []*broker.Broker
	topics  []string
}

var rootSeq struct {
	sync.Mutex
	n int
}

func uniqueRoot() string {
	rootSeq.Lock()
	defer rootSeq.Unlock()
	rootSeq.n++
	return fmt.Sprintf("/c%s-%d/meta", time.Now().Format("150405.000000"), rootSeq.n)
}

// newEnv starts nBrokers brokers (ids 1..n) with parts partitions per topic.
func newEnv(t testing.TB, nBrokers, parts int, topics ...string) *env {
	t.Helper()
	e := &env{t: t, zk: zktest.Shared(t).Addr, root: uniqueRoot(), topics: topics}
	for i := 1; i <= nBrokers; i++ {
		e.brokers = append(e.brokers, e.startBroker(i, parts, nil))
	}
	return e
}

func (e *env) startBroker(id, parts int, modify func(*broker.Options)) *broker.Broker {
	return brokertest.Start(e.t, brokertest.Options{BrokerID: id, Partitions: parts, ZK: e.zk, ZKRoot: e.root,
		Modify: func(o *broker.Options) {
			o.Topics = e.topics
			if modify != nil {
				modify(o)
			}
		}})
}

// opts returns the options every test consumer needs.
func (e *env) opts(extra ...consumer.Option) []consumer.Option {
	return append([]consumer.Option{consumer.WithZooKeeper([]string{e.zk}, e.root),
		consumer.WithSessionTimeout(4 * time.Second), consumer.WithAutoCommit(100 * time.Millisecond)}, extra...)
}

// session opens a ZooKeeper session for checks.
func (e *env) session() *zkrecipes.Session {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := zkrecipes.Connect(ctx, []string{e.zk})
	require.NoError(e.t, err)
	e.t.Cleanup(s.Close)
	return s
}

func (e *env) committed(group string, tp consumer.TopicPartition) int64 {
	s := e.session()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o, found, err := coordinator.FetchOffset(ctx, s, coordinator.NewPaths(e.root), group,
		coordinator.TopicPartition{Topic: tp.Topic, Partition: coordinator.Partition{BrokerID: tp.BrokerID, Partition: tp.Partition}})
	require.NoError(e.t, err)
	if !found {
		return -1
	}
	return o.Offset
}

// produced is what was put: payload → partition and offset.
type produced struct {
	tp     consumer.TopicPartition
	offset int64
	next   int64
}

// produce puts n messages of size bytes (at least the sequence text) into
// one partition of broker b, pipelined, and returns them in send order.
func (e *env) produce(b *broker.Broker, bid int, topic string, part, n, size int, tag string) map[string]produced {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := conn.Dial(ctx, b.Addr(), conn.Options{})
	require.NoError(e.t, err)
	defer c.Close()
	out := make(map[string]produced, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("%s/%d-%d/%06d", tag, bid, part, i)
		data := []byte(key)
		if len(data) < size {
			data = append(data, strings.Repeat("~", size-len(data))...)
		}
		req := &protocol.PutRequest{Topic: topic, Partition: int32(part), Checksum: protocol.Checksum(data), Data: data}
		wg.Add(1)
		h := putHandler(func(rep *protocol.Reply, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err == nil && rep.Code != protocol.CodeOK {
				err = fmt.Errorf("put %s: %d %s", key, rep.Code, rep.Body)
			}
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			_, _, off, perr := protocol.ParsePutResult(rep.Body)
			if perr != nil && firstErr == nil {
				firstErr = perr
			}
			out[key] = produced{tp: consumer.TopicPartition{Topic: topic, BrokerID: bid, Partition: part}, offset: off,
				next: off + int64(protocol.MessageHeaderSize+len(data))}
		})
		require.NoError(e.t, c.Start(conn.ProtocolRequest(req), h))
		if i%512 == 511 {
			wg.Wait()
		}
	}
	wg.Wait()
	require.NoError(e.t, firstErr)
	return out
}

type putHandler func(*protocol.Reply, error)

func (h putHandler) HandleReply(rep *protocol.Reply, err error) { h(rep, err) }

// produceAll puts n messages into every partition of every broker.
func (e *env) produceAll(topic string, parts, n, size int, tag string) map[string]produced {
	all := map[string]produced{}
	for i, b := range e.brokers {
		for p := 0; p < parts; p++ {
			for k, v := range e.produce(b, i+1, topic, p, n, size, tag) {
				all[k] = v
			}
		}
	}
	return all
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(wait) // polling interval of an eventually-check, not a fixed wait for an effect
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// delivery is one handled message.
type delivery struct {
	who    string
	key    string
	tp     consumer.TopicPartition
	offset int64
	at     time.Time
}

// recorder records deliveries and audits that no partition is processed by
// two consumers at the same time.
type recorder struct {
	t      testing.TB
	mu     sync.Mutex // guards every field below
	log    []delivery
	active map[consumer.TopicPartition]string
	errs   []string
}

func newRecorder(t testing.TB) *recorder {
	return &recorder{t: t, active: map[consumer.TopicPartition]string{}}
}

func (r *recorder) handler(who string) consumer.Handler {
	return func(ctx context.Context, m *consumer.Message) error {
		r.enter(who, m)
		r.exit(who, m)
		return nil
	}
}

func (r *recorder) enter(who string, m *consumer.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tp := m.TopicPartition()
	if o := r.active[tp]; o != "" && o != who {
		r.errs = append(r.errs, fmt.Sprintf("%s handles %s while %s does", who, tp, o))
	}
	r.active[tp] = who
	r.log = append(r.log, delivery{who: who, key: keyOf(m.Payload), tp: tp, offset: m.Offset, at: time.Now()})
}

func (r *recorder) exit(who string, m *consumer.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.active, m.TopicPartition())
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.log)
}

func (r *recorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, d := range r.log {
		seen[d.key] = true
	}
	return len(seen)
}

func (r *recorder) snapshot() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

func keyOf(payload []byte) string {
	s := string(payload)
	if i := strings.IndexByte(s, '~'); i >= 0 {
		s = s[:i]
	}
	return s
}

// checkExactlyInOrder asserts every produced message was delivered once and
// per partition in offset order.
func checkExactlyInOrder(t testing.TB, want map[string]produced, got []delivery) {
	t.Helper()
	seen := map[string]int{}
	last := map[consumer.TopicPartition]int64{}
	for _, d := range got {
		seen[d.key]++
		p, ok := want[d.key]
		require.True(t, ok, "unexpected message %q", d.key)
		require.Equal(t, p.offset, d.offset, "offset of %s", d.key)
		if l, ok := last[d.tp]; ok {
			require.Greater(t, d.offset, l, "order in %s", d.tp)
		}
		last[d.tp] = d.offset
	}
	for k := range want {
		require.Equal(t, 1, seen[k], "deliveries of %s", k)
	}
}

// logEnds returns the next offset after the last produced message per partition.
func logEnds(want map[string]produced) map[consumer.TopicPartition]int64 {
	out := map[consumer.TopicPartition]int64{}
	for _, p := range want {
		out[p.tp] = max(out[p.tp], p.next)
	}
	return out
}

func newConsumer(t testing.TB, group string, opts ...consumer.Option) *consumer.Consumer {
	t.Helper()
	c, err := consumer.New(group, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

func start(t testing.TB, c *consumer.Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, c.Start(ctx))
}

func closeC(t testing.TB, c *consumer.Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, c.Close(ctx))
}

// goroutines returns a check that the goroutine count is back to (about)
// where it was, allowing for the test's own long-lived helpers.
func goroutines(t testing.TB) func() {
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		var n int
		deadline := time.Now().Add(10 * time.Second)
		for {
			n = runtime.NumGoroutine()
			if n <= before || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond) // eventually-poll
		}
		if n > before {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutine leak: %d before, %d after Close\n%s", before, n, buf)
		}
	}
}
