package consumer_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/consumer"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// collect subscribes a handler that appends payload keys.
type collect struct {
	mu   sync.Mutex // guards keys, msgs
	keys []string
	msgs []consumer.Message
}

func (cl *collect) handler(ctx context.Context, m *consumer.Message) error {
	cl.mu.Lock()
	cl.keys = append(cl.keys, keyOf(m.Payload))
	cl.msgs = append(cl.msgs, *m)
	cl.mu.Unlock()
	return nil
}

func (cl *collect) len() int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return len(cl.keys)
}

func (cl *collect) sorted() []string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	out := append([]string(nil), cl.keys...)
	sort.Strings(out)
	return out
}

func keysOf(m map[string]produced) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Scenario: without a committed offset, earliest starts at the first
// message, latest only sees new ones, an explicit offset starts there (and
// one beyond the end is moved to the end by the broker).
func TestStartPositions(t *testing.T) {
	e := newEnv(t, 1, 1, "pos")
	old := e.produce(e.brokers[0], 1, "pos", 0, 10, 16, "old")
	var offs []int64
	for _, p := range old {
		offs = append(offs, p.offset)
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })

	var all []int64
	for _, p := range old {
		all = append(all, p.offset)
	}
	after := func(x int64) int {
		n := 0
		for _, o := range all {
			if o >= x {
				n++
			}
		}
		return n
	}
	run := func(group string, pos consumer.StartPosition, wantOld int, redirect bool) {
		t.Helper()
		cl := &collect{}
		c := newConsumer(t, group, e.opts(consumer.WithStart(pos))...)
		require.NoError(t, c.Subscribe("pos", cl.handler))
		start(t, c)
		if wantOld > 0 {
			eventually(t, 20*time.Second, "old messages", func() bool { return cl.len() >= wantOld })
		}
		// Wait until the fetcher is positioned (caught up at the end).
		eventually(t, 20*time.Second, "positioned", func() bool {
			st := c.Stats()
			return len(st.Partitions) == 1 && st.Partitions[0].FetchOffset >= offs[0] && st.Partitions[0].FetchOffset != math.MaxInt64 &&
				st.Partitions[0].FetchOffset <= offs[len(offs)-1]+1<<20
		})
		fresh := e.produce(e.brokers[0], 1, "pos", 0, 3, 16, group)
		for _, p := range fresh {
			all = append(all, p.offset)
		}
		eventually(t, 20*time.Second, "new messages", func() bool { return cl.len() >= wantOld+3 })
		closeC(t, c)
		got := cl.sorted()
		require.Len(t, got, wantOld+3, "%s: %v", group, got)
		for k := range fresh {
			require.Contains(t, got, k)
		}
		if redirect {
			require.GreaterOrEqual(t, c.Stats().Redirects, int64(1), "%s: broker correction adopted", group)
		}
	}
	run("earliest", consumer.StartEarliest, 10, false)
	run("latest", consumer.StartLatest, 0, true)
	run("explicit", consumer.StartAt(offs[7]), after(offs[7]), false)
	run("inside-message", consumer.StartAt(offs[7]+5), after(offs[7]), true)
	run("beyond-end", consumer.StartAt(1<<40), 0, true)
}

// Scenario: the committed offset points before the log start (retention
// removed the segments): the broker's 301 is adopted and consumption
// continues at the first stored message.
func TestCommittedOffsetBeforeLogStartIsRedirected(t *testing.T) {
	e := &env{t: t, zk: zktest.Shared(t).Addr, root: uniqueRoot(), topics: []string{"ret"}}
	b := e.startBroker(1, 1, func(o *broker.Options) {
		o.Store.MaxSegmentSize = 4096
		o.Store.Retention.MaxAge = time.Millisecond
	})
	e.brokers = []*broker.Broker{b}
	first := map[string]produced{}
	for i := range 8 { // separate group commits, so that segments roll at 4 KiB
		for k, v := range e.produce(b, 1, "ret", 0, 10, 100, fmt.Sprint("a", i)) {
			first[k] = v
		}
	}
	c := newConsumer(t, "gr", e.opts()...)
	cl := &collect{}
	require.NoError(t, c.Subscribe("ret", cl.handler))
	start(t, c)
	eventually(t, 20*time.Second, "first batch", func() bool { return cl.len() >= len(first) })
	closeC(t, c)
	tp := consumer.TopicPartition{Topic: "ret", BrokerID: 1, Partition: 0}
	require.Equal(t, logEnds(first)[tp], e.committed("gr", tp))
	// A second group committed offset 0 long ago; retention drops closed segments.
	c0 := newConsumer(t, "gr0", e.opts(consumer.WithManualCommit())...)
	require.NoError(t, c0.Subscribe("ret", func(ctx context.Context, m *consumer.Message) error { return nil }))
	start(t, c0)
	closeC(t, c0)
	p, err := b.Store().Partition("ret", 0, false)
	require.NoError(t, err)
	eventually(t, 10*time.Second, "retention removed the first segment", func() bool {
		require.NoError(t, p.RunRetention(time.Now().Add(time.Hour)))
		return p.Stats().MinOffset > 0
	})
	cl2 := &collect{}
	c2 := newConsumer(t, "gr0", e.opts()...)
	require.NoError(t, c2.Subscribe("ret", cl2.handler))
	start(t, c2)
	eventually(t, 20*time.Second, "redirected and consumed", func() bool {
		st := c2.Stats()
		return st.Redirects >= 1 && len(st.Partitions) == 1 && st.Partitions[0].FetchOffset == logEnds(first)[tp]
	})
	cl2.mu.Lock()
	require.NotEmpty(t, cl2.msgs)
	require.Equal(t, p.Stats().MinOffset, cl2.msgs[0].Offset, "first delivered message is the first stored")
	cl2.mu.Unlock()
}

// Scenario: a byte of a stored message is corrupted on disk: the broker
// refuses to serve it, the consumer delivers everything before it, never the
// corrupt message, and reports the stop.
func TestCorruptSegmentOnDiskNotDelivered(t *testing.T) {
	dir := t.TempDir()
	e := &env{t: t, zk: zktest.Shared(t).Addr, root: uniqueRoot(), topics: []string{"disk"}}
	b := brokertest.Start(t, brokertest.Options{BrokerID: 1, Partitions: 1, ZK: e.zk, ZKRoot: e.root, DataDir: dir,
		Modify: func(o *broker.Options) { o.Topics = e.topics }})
	msgs := e.produce(b, 1, "disk", 0, 20, 64, "d")
	var offs []int64
	for _, p := range msgs {
		offs = append(offs, p.offset)
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	bad := offs[12]
	seg := findSegment(t, dir, "disk-0")
	flipByte(t, seg, bad+20+3) // a payload byte of message 12
	cl := &collect{}
	c := newConsumer(t, "gd", e.opts()...)
	require.NoError(t, c.Subscribe("disk", cl.handler))
	start(t, c)
	eventually(t, 20*time.Second, "stop reported", func() bool {
		st := c.Stats()
		return cl.len() >= 12 && len(st.Partitions) == 1 && strings.Contains(st.Partitions[0].Err, "corrupt")
	})
	require.Equal(t, 12, cl.len())
	for _, m := range cl.msgs {
		require.Less(t, m.Offset, bad)
	}
	t.Logf("partition error: %s", c.Stats().Partitions[0].Err)
}

func findSegment(t testing.TB, dir, part string) string {
	var found string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".meta") && filepath.Base(filepath.Dir(p)) == part && found == "" {
			found = p
		}
		return nil
	})
	require.NotEmpty(t, found, "segment of %s under %s", part, dir)
	return found
}

func flipByte(t testing.TB, path string, at int64) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, at)
	require.NoError(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, at)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
}

// Scenario: "latest" on a partition nothing was written to yet starts at 0,
// so the first message ever written is not skipped.
func TestStartLatestOnEmptyPartition(t *testing.T) {
	e := newEnv(t, 1, 1, "empty")
	cl := &collect{}
	c := newConsumer(t, "gl", e.opts(consumer.WithStart(consumer.StartLatest))...)
	require.NoError(t, c.Subscribe("empty", cl.handler))
	start(t, c)
	eventually(t, 20*time.Second, "positioned at 0", func() bool {
		st := c.Stats()
		return len(st.Partitions) == 1 && st.Partitions[0].FetchOffset == 0
	})
	e.produce(e.brokers[0], 1, "empty", 0, 1, 8, "first")
	eventually(t, 20*time.Second, "first message delivered", func() bool { return cl.len() == 1 })
}
