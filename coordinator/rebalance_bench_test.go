package coordinator_test

// The rebalance benchmark of docs/REBALANCE.md. It does not run in a normal
// `go test`; run it with
//
//	METAQ_REBALANCE_BENCH=1 go test -run TestRebalanceBenchmark -v -timeout 20m ./coordinator/
//
// For N members (separate sessions) and P partitions it measures, for one
// join and one clean leave, the time until every partition is owned again,
// the watch notifications delivered (sum of Session.WatchEvents deltas), the
// ZooKeeper requests the server received (mntr zk_packets_received delta;
// sessions use a 30 s timeout so pings add at most ~N/10 per second) and the
// partitions that stopped — for this design and for a Kafka-0.7-style eager
// baseline built here (every member watches the member list and the topic,
// and on any change releases everything and re-claims its range, retrying
// on conflicts).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

type benchResult struct {
	design, change string
	n, p           int
	converge       time.Duration
	notifications  int64
	requests       int64
	paused         int64
}

// mntrCalls counts our own mntr requests: each one is a packet too.
var mntrCalls atomic.Int64

// packetsReceived returns the server's received-packet counter minus our own mntr polls.
func packetsReceived(t testing.TB, srv *zktest.Server) int64 {
	calls := mntrCalls.Add(1)
	out, err := srv.FourLetter("mntr")
	require.NoError(t, err)
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "zk_packets_received" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			require.NoError(t, err)
			return n - calls
		}
	}
	t.Fatalf("no zk_packets_received in mntr")
	return 0
}

func benchSession(t testing.TB, addr string) *zkrecipes.Session {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := zkrecipes.Connect(ctx, []string{addr}, zkrecipes.WithSessionTimeout(30*time.Second))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

// ownTracker counts owned partitions (each partition may be owned once).
type ownTracker struct {
	mu      sync.Mutex // guards by
	by      map[string]string
	revoked atomic.Int64
}

func (o *ownTracker) set(tps []string, m string, on bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, tp := range tps {
		if on {
			o.by[tp] = m
		} else if o.by[tp] == m {
			delete(o.by, tp)
		}
	}
}

func (o *ownTracker) owned() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.by)
}

type trackHandler struct {
	coordinator.NopHandler
	o  *ownTracker
	id string
}

func names(tps []coordinator.TopicPartition) []string {
	out := make([]string, len(tps))
	for i, tp := range tps {
		out[i] = tp.String()
	}
	return out
}

func (h trackHandler) Assigned(_ context.Context, tps []coordinator.TopicPartition) {
	h.o.set(names(tps), h.id, true)
}

func (h trackHandler) Revoked(_ context.Context, tps []coordinator.TopicPartition) {
	h.o.revoked.Add(int64(len(tps)))
	h.o.set(names(tps), h.id, false)
}

func (h trackHandler) Lost(tps []coordinator.TopicPartition) { h.o.set(names(tps), h.id, false) }

func sumWatch(ss []*zkrecipes.Session) int64 {
	var n int64
	for _, s := range ss {
		n += s.WatchEvents()
	}
	return n
}

// measure runs change and waits until every partition is owned again and
// the extra condition holds, with no further ownership change for settle.
func measure(t testing.TB, srv *zktest.Server, ss func() []*zkrecipes.Session, o *ownTracker, p int,
	change func(), done func() bool) (time.Duration, int64, int64, int64) {
	w0, r0, rv0 := sumWatch(ss()), packetsReceived(t, srv), o.revoked.Load()
	start := time.Now()
	change()
	var took time.Duration
	require.Eventually(t, func() bool {
		if o.owned() == p && done() {
			took = time.Since(start)
			return true
		}
		return false
	}, 120*time.Second, time.Millisecond)
	// Let stragglers (watch re-arming, deletes) finish before reading counters:
	// wait until the server's packet counter stops moving for 300ms.
	last := packetsReceived(t, srv)
	stable := time.Now()
	require.Eventually(t, func() bool {
		n := packetsReceived(t, srv)
		if n != last {
			last, stable = n, time.Now()
		}
		return time.Since(stable) > 300*time.Millisecond
	}, 30*time.Second, 20*time.Millisecond)
	return took, sumWatch(ss()) - w0, last - r0, o.revoked.Load() - rv0
}

func benchOurs(t *testing.T, srv *zktest.Server, n, p int) []benchResult {
	root := uniqueRoot(t)
	paths := coordinator.NewPaths(root)
	admin := benchSession(t, srv.Addr)
	brokers := p / 100
	registerTopic(t, admin, paths, "bench", 100, seq(brokers)...)
	o := &ownTracker{by: map[string]string{}}
	var mu sync.Mutex
	var sessions []*zkrecipes.Session
	groups := map[string]*coordinator.Group{}
	opts := coordinator.GroupOptions{Group: "g", Topics: []string{"bench"}, Debounce: 100 * time.Millisecond, FormingDebounce: 300 * time.Millisecond}
	join := func(id string) {
		s := benchSession(t, srv.Addr)
		op := opts
		op.MemberID, op.Handler = id, trackHandler{o: o, id: id}
		g, err := coordinator.JoinGroup(context.Background(), s, paths, op)
		require.NoError(t, err)
		t.Cleanup(func() { _ = g.Close(context.Background()) })
		mu.Lock()
		sessions = append(sessions, s)
		groups[id] = g
		mu.Unlock()
	}
	ss := func() []*zkrecipes.Session { mu.Lock(); defer mu.Unlock(); return slices.Clone(sessions) }
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); join(fmt.Sprintf("m%03d", i)) }()
	}
	wg.Wait()
	require.Eventually(t, func() bool { return o.owned() == p }, 60*time.Second, 5*time.Millisecond)
	var out []benchResult
	took, w, r, paused := measure(t, srv, ss, o, p, func() { join("new") }, func() bool {
		return len(groups["new"].Owned()) >= p/(n+1)
	})
	out = append(out, benchResult{"herd-free", "join", n, p, took, w, r, paused})
	took, w, r, paused = measure(t, srv, ss, o, p, func() {
		require.NoError(t, groups["m001"].Close(context.Background()))
	}, func() bool { return true })
	out = append(out, benchResult{"herd-free", "leave", n, p, took, w, r, paused})
	for _, g := range groups {
		_ = g.Close(context.Background())
	}
	return out
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// eagerMember is the Kafka 0.7 / MetaQ rebalance, kept minimal.
type eagerMember struct {
	s      *zkrecipes.Session
	id     string
	paths  coordinator.Paths
	o      *ownTracker
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	owned  []string // owner node paths
	ownedN []string // tracker names
}

func (e *eagerMember) idsDir() string { return e.paths.GroupMetaQIDs("eager") }

func (e *eagerMember) forward(ch <-chan zk.Event) {
	go func() {
		select {
		case <-ch:
			select {
			case e.kick <- struct{}{}:
			default:
			}
		case <-e.stop:
		}
	}()
}

func (e *eagerMember) run() {
	defer close(e.done)
	for {
		e.rebalance()
		select {
		case <-e.kick:
		case <-e.stop:
			return
		}
	}
}

func (e *eagerMember) release(ctx context.Context) {
	e.o.set(e.ownedN, e.id, false)
	e.o.revoked.Add(int64(len(e.ownedN)))
	for _, p := range e.owned {
		_ = e.s.DeleteIfExists(ctx, p)
	}
	e.owned, e.ownedN = nil, nil
}

// rebalance: release all, read everything, claim the range; on a conflict
// release and retry (unlimited here; Kafka gave up after 4, MetaQ after 7).
func (e *eagerMember) rebalance() {
	ctx := context.Background()
	e.release(ctx)
	for attempt := 0; ; attempt++ {
		select {
		case <-e.stop:
			return
		default:
		}
		if e.tryClaim(ctx) {
			return
		}
		e.release(ctx)
		time.Sleep(time.Duration(10+rand.IntN(20*(attempt+1))) * time.Millisecond)
	}
}

func (e *eagerMember) tryClaim(ctx context.Context) bool {
	ids, _, ch, err := e.s.ChildrenW(ctx, e.idsDir())
	if err != nil {
		return false
	}
	e.forward(ch)
	for _, id := range ids { // Kafka reads every consumer's subscription
		_, _, _ = e.s.Get(ctx, path.Join(e.idsDir(), id))
	}
	tdir := e.paths.TopicSubDir("bench")
	bs, _, tch, err := e.s.ChildrenW(ctx, tdir)
	if err != nil {
		return false
	}
	e.forward(tch)
	var parts []coordinator.Partition
	for _, b := range bs {
		data, _, err := e.s.Get(ctx, path.Join(tdir, b))
		if err != nil {
			return false
		}
		var pi coordinator.PartitionInfo
		if id, _, err := coordinator.ParseBrokerNodeName(b); err == nil && jsonUnmarshal(data, &pi) == nil {
			for i := 0; i < pi.NumParts; i++ {
				parts = append(parts, coordinator.Partition{BrokerID: id, Partition: i})
			}
		}
	}
	slices.SortFunc(parts, coordinator.Partition.Compare)
	slices.Sort(ids)
	me := slices.Index(ids, e.id)
	if me < 0 {
		return false
	}
	per, extra := len(parts)/len(ids), len(parts)%len(ids)
	start := me*per + min(me, extra)
	cnt := per
	if me < extra {
		cnt++
	}
	for _, pt := range parts[start : start+cnt] {
		_, _, _ = e.s.Get(ctx, e.paths.GroupOffset("eager", "bench", pt.BrokerID, pt.Partition)) // read its offset
		op := e.paths.GroupOwner("eager", "bench", pt.BrokerID, pt.Partition)
		_, err := e.s.CreateParents(ctx, op, []byte(e.id), zkrecipes.Ephemeral)
		if err != nil {
			return false // conflict: somebody still owns it
		}
		name := "bench/" + pt.String()
		e.owned, e.ownedN = append(e.owned, op), append(e.ownedN, name)
		e.o.set([]string{name}, e.id, true)
	}
	return true
}

func benchEager(t *testing.T, srv *zktest.Server, n, p int) []benchResult {
	root := uniqueRoot(t)
	paths := coordinator.NewPaths(root)
	admin := benchSession(t, srv.Addr)
	registerTopic(t, admin, paths, "bench", 100, seq(p/100)...)
	require.NoError(t, admin.EnsurePath(context.Background(), paths.GroupMetaQIDs("eager")))
	o := &ownTracker{by: map[string]string{}}
	var mu sync.Mutex
	var sessions []*zkrecipes.Session
	members := map[string]*eagerMember{}
	join := func(id string) {
		s := benchSession(t, srv.Addr)
		e := &eagerMember{s: s, id: id, paths: paths, o: o, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
		_, err := s.Create(context.Background(), path.Join(paths.GroupMetaQIDs("eager"), id), []byte("bench"), zkrecipes.Ephemeral)
		require.NoError(t, err)
		mu.Lock()
		sessions = append(sessions, s)
		members[id] = e
		mu.Unlock()
		go e.run()
		t.Cleanup(func() { e.leave() })
	}
	ss := func() []*zkrecipes.Session { mu.Lock(); defer mu.Unlock(); return slices.Clone(sessions) }
	for i := 0; i < n; i++ {
		join(fmt.Sprintf("m%03d", i))
	}
	require.Eventually(t, func() bool { return o.owned() == p }, 120*time.Second, 5*time.Millisecond)
	var out []benchResult
	took, w, r, paused := measure(t, srv, ss, o, p, func() { join("new") }, func() bool { return true })
	out = append(out, benchResult{"eager (Kafka 0.7)", "join", n, p, took, w, r, paused})
	took, w, r, paused = measure(t, srv, ss, o, p, func() { members["m001"].leave() }, func() bool { return true })
	out = append(out, benchResult{"eager (Kafka 0.7)", "leave", n, p, took, w, r, paused})
	for _, e := range members {
		e.leave()
	}
	return out
}

func (e *eagerMember) leave() {
	select {
	case <-e.stop:
		return
	default:
	}
	close(e.stop)
	<-e.done
	ctx := context.Background()
	e.release(ctx)
	_ = e.s.DeleteIfExists(ctx, path.Join(e.idsDir(), e.id))
}

func TestRebalanceBenchmark(t *testing.T) {
	if os.Getenv("METAQ_REBALANCE_BENCH") == "" || testing.Short() {
		t.Skip("set METAQ_REBALANCE_BENCH=1 to run the rebalance benchmark")
	}
	srv := zktest.Shared(t)
	var rows []benchResult
	for _, n := range []int{10, 50} {
		for _, p := range []int{100, 1000} {
			rows = append(rows, benchOurs(t, srv, n, p)...)
			rows = append(rows, benchEager(t, srv, n, p)...)
		}
	}
	t.Logf("\n| design | change | N | P | all owned again after | watch notifications | ZK requests | partitions paused |\n|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		t.Logf("| %s | %s | %d | %d | %v | %d | %d | %d |", r.design, r.change, r.n, r.p,
			r.converge.Round(time.Millisecond), r.notifications, r.requests, r.paused)
	}
}

var errNoJSON = errors.New("empty")

func jsonUnmarshal(data []byte, v *coordinator.PartitionInfo) error {
	if len(data) == 0 {
		return errNoJSON
	}
	return jsonDecode(data, v)
}

func jsonDecode(data []byte, v *coordinator.PartitionInfo) error { return json.Unmarshal(data, v) }
