package replica_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/replica"
	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

const sessionTimeout = 2 * time.Second

// ledger records every Lead and Follow of every member of a test cluster.
type ledger struct {
	mu      sync.Mutex // guards the fields below
	leaders map[int64][]int
	leadAt  map[int]time.Time
	onLead  func(member int, epoch int64)
}

func newLedger() *ledger { return &ledger{leaders: map[int64][]int{}, leadAt: map[int]time.Time{}} }

func (l *ledger) lead(member int, epoch int64) {
	l.mu.Lock()
	l.leaders[epoch] = append(l.leaders[epoch], member)
	l.leadAt[member] = time.Now()
	hook := l.onLead
	l.mu.Unlock()
	if hook != nil {
		hook(member, epoch)
	}
}

func (l *ledger) snapshot() map[int64][]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[int64][]int{}
	for e, ms := range l.leaders {
		out[e] = append([]int(nil), ms...)
	}
	return out
}

// fakeRole is the broker side reduced to what the driver sees: Lead
// registers the master node (as the broker's Registrar does), Follow
// deregisters it first and records whom it follows.
type fakeRole struct {
	id     int
	uri    string
	logEnd int64
	s      *zkrecipes.Session
	paths  coordinator.Paths
	ledger *ledger

	mu       sync.Mutex // guards the fields below
	reg      *coordinator.Registrar
	follows  []string
	handoffs []int
	history  int64 // newest epoch of the local history (0: new or wiped data)
}

// CanLead implements replica.LeadChecker like the broker: no epoch history, no standing.
func (r *fakeRole) CanLead() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.history == 0 {
		return fmt.Errorf("member %d has no epoch history", r.id)
	}
	return nil
}

// PrepareHandoff implements replica.Handoff: the fake has nothing in flight.
func (r *fakeRole) PrepareHandoff(ctx context.Context, member int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handoffs = append(r.handoffs, member)
	return nil
}

func (r *fakeRole) MemberID() int { return r.id }

func (r *fakeRole) LogEnds() map[replica.Partition]int64 {
	return map[replica.Partition]int64{{Topic: "t", Part: 0}: r.logEnd / 2, {Topic: "t", Part: 1}: r.logEnd - r.logEnd/2}
}

func (r *fakeRole) InSync() bool { return true }

func (r *fakeRole) Lead(ctx context.Context, epoch int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reg == nil {
		reg := coordinator.NewRegistrar(r.s, r.paths, coordinator.BrokerInfo{ID: 4, URI: r.uri}, nil)
		if err := reg.Start(ctx, nil); err != nil {
			return err
		}
		r.reg = reg
	}
	r.history = epoch
	r.ledger.lead(r.id, epoch)
	return nil
}

func (r *fakeRole) Follow(ctx context.Context, epoch int64, uri string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reg != nil {
		if err := r.reg.Close(ctx); err != nil {
			return err
		}
		r.reg = nil
	}
	r.follows = append(r.follows, fmt.Sprintf("%d %s", epoch, uri))
	r.history = epoch // the follower takes the master's history
	return nil
}

func (r *fakeRole) followed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.follows...)
}

func (r *fakeRole) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reg != nil {
		_ = r.reg.Close(context.Background())
	}
}

type node struct {
	role *fakeRole
	f    *replica.Failover
	s    *zkrecipes.Session
	logs *logCapture
}

// logCapture records the driver's log messages so that a test can wait for a decision.
type logCapture struct {
	mu   sync.Mutex // guards msgs and seen
	msgs []string
	seen chan struct{} // closed and replaced on every message
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *logCapture) WithGroup(string) slog.Handler            { return c }
func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, r.Message)
	close(c.seen)
	c.seen = make(chan struct{})
	return nil
}

// awaitLog waits until the driver of n logged a message containing want.
func awaitLog(t *testing.T, n node, want string) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		n.logs.mu.Lock()
		seen, msgs := n.logs.seen, slices.Clone(n.logs.msgs)
		n.logs.mu.Unlock()
		if slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, want) }) {
			return
		}
		select {
		case <-seen:
		case <-deadline:
			t.Fatalf("member %d never logged %q; logged %q", n.role.id, want, msgs)
		}
	}
}

func testRoot() string { return "/t" + time.Now().Format("150405.000000000") + "/meta" }

func uri(id int) string { return fmt.Sprintf("meta://127.0.0.1:%d", 8000+id) }

// startNode connects a member with an empty data directory to ZooKeeper at
// addr and starts its driver.
func startNode(t *testing.T, addr string, paths coordinator.Paths, l *ledger, id int, logEnd int64) node {
	t.Helper()
	return restartNode(t, addr, paths, l, id, logEnd, 0)
}

// restartNode starts a member whose data directory holds a log of logEnd
// bytes and an epoch history up to epoch history.
func restartNode(t *testing.T, addr string, paths coordinator.Paths, l *ledger, id int, logEnd, history int64) node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := zkrecipes.Connect(ctx, strings.Split(addr, ","), zkrecipes.WithSessionTimeout(sessionTimeout))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	role := &fakeRole{id: id, uri: uri(id), logEnd: logEnd, s: s, paths: paths, ledger: l, history: history}
	logs := &logCapture{seen: make(chan struct{})}
	f, err := replica.NewFailover(replica.FailoverConfig{
		Replicas: coordinator.NewReplicaSet(s, paths, 4, nil), Role: role, URI: uri(id), Log: slog.New(logs),
	})
	require.NoError(t, err)
	require.NoError(t, f.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, f.Close(ctx))
		role.close()
	})
	return node{role: role, f: f, s: s, logs: logs}
}

// startReplicaSet starts member 0 (connected through masterAddr) and waits
// until it leads epoch 1, then members 1.. with the given log ends
// (connected to slaveAddr) and waits until they follow it.
func startReplicaSet(t *testing.T, masterAddr, slaveAddr string, logEnds ...int64) (coordinator.Paths, *ledger, []node) {
	t.Helper()
	paths := coordinator.NewPaths(testRoot())
	l := newLedger()
	nodes := []node{startNode(t, masterAddr, paths, l, 0, logEnds[0])}
	awaitStatus(t, nodes[0], leading(0, 1), "the configured master bootstraps epoch 1")
	for i, end := range logEnds[1:] {
		nodes = append(nodes, startNode(t, slaveAddr, paths, l, i+1, end))
	}
	for _, n := range nodes[1:] {
		awaitStatus(t, n, following(0, 1), "the slaves follow")
	}
	return paths, l, nodes
}

// awaitStatus waits (generously: the machine is shared) until n's driver reports want.
func awaitStatus(t *testing.T, n node, want replica.Status, why string) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		ch := n.f.Changed()
		if n.f.Status() == want {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("member %d: %s: status %+v, want %+v", n.role.id, why, n.f.Status(), want)
		}
	}
}

func leading(id int, epoch int64) replica.Status {
	return replica.Status{Leading: true, Epoch: epoch, Master: id, URI: uri(id)}
}

func following(master int, epoch int64) replica.Status {
	return replica.Status{Epoch: epoch, Master: master, URI: uri(master)}
}

// TestFailoverPromotesTheInSyncSlaveWhenTheMasterIsCutOff: member 0 leads
// epoch 1; member 1 (in sync, short log) and member 2 (not in sync, longest
// log) follow. Member 0's ZooKeeper traffic is frozen (like kill -9 or a
// partition). Member 1 leads epoch 2 within session timeout + 2 s, only
// after member 0 can no longer prove its session alive (rule 4); member 2
// never leads; member 0 comes back and follows member 1.
func TestFailoverPromotesTheInSyncSlaveWhenTheMasterIsCutOff(t *testing.T) {
	srv := zktest.Shared(t)
	proxy := zktest.NewProxyT(t, srv.Addr)
	_, l, ns := startReplicaSet(t, proxy.Addr(), srv.Addr, 500, 10, 1000)
	n0, n1, n2 := ns[0], ns[1], ns[2]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, n0.f.WriteISR(ctx, []int{1}), "the master adds slave 1 (and itself) to the in-sync set")

	var rule4 error
	l.mu.Lock()
	l.onLead = func(member int, epoch int64) {
		if live := n0.s.Liveness(); member != 0 && time.Now().Before(live.Until(sessionTimeout, 0)) {
			rule4 = fmt.Errorf("member %d leads epoch %d while member 0 can still prove its session alive until %v",
				member, epoch, live.Until(sessionTimeout, 0))
		}
	}
	l.mu.Unlock()
	frozen := time.Now()
	proxy.Freeze()
	awaitStatus(t, n1, leading(1, 2), "the in-sync slave takes over")
	l.mu.Lock()
	took := l.leadAt[1].Sub(frozen)
	l.mu.Unlock()
	require.NoError(t, rule4)
	require.LessOrEqual(t, took, sessionTimeout+2*time.Second, "promotion within session timeout + 2 s")
	awaitStatus(t, n2, following(1, 2), "the async/out-of-sync slave follows the new master")

	proxy.Unfreeze()
	awaitStatus(t, n0, following(1, 2), "the old master comes back as a follower")
	require.Contains(t, n0.role.followed(), "2 "+uri(1))
	err := n0.f.WriteISR(ctx, []int{0})
	require.ErrorIs(t, err, replica.ErrNotMaster)

	require.Equal(t, map[int64][]int{1: {0}, 2: {1}}, l.snapshot(), "one leader per epoch; member 2 never leads")
	t.Logf("promotion took %v after the freeze", took)
}

// TestFailoverMasterSessionExpiryLosesMastership: the master's session is
// expired on the server while the process runs. It loses the election with
// its session, its ISR writes are refused, the slave with the longer log
// wins epoch 2, and the old master follows it.
func TestFailoverMasterSessionExpiryLosesMastership(t *testing.T) {
	srv := zktest.Shared(t)
	_, l, ns := startReplicaSet(t, srv.Addr, srv.Addr, 100, 200)
	n0, n1 := ns[0], ns[1]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, n0.f.WriteISR(ctx, []int{0, 1}))

	require.NoError(t, zktest.ExpireSession(ctx, srv.Addr, zktest.Credentials{SessionID: n0.s.ID(), Password: n0.s.Password()}))
	awaitStatus(t, n1, leading(1, 2), "the longer in-sync log wins")
	awaitStatus(t, n0, following(1, 2), "the old master steps down and follows")
	err := n0.f.WriteISR(ctx, []int{0})
	require.True(t, errors.Is(err, replica.ErrNotMaster) || errors.Is(err, coordinator.ErrEpochChanged), "%v", err)
	require.Equal(t, map[int64][]int{1: {0}, 2: {1}}, l.snapshot())
}

// TestFailoverNobodyOutsideTheInSyncSetLeads: the master's in-sync set is
// only itself; when it dies, the slave must not lead (it may lack
// acknowledged messages). When the master returns it leads again, in a new epoch.
func TestFailoverNobodyOutsideTheInSyncSetLeads(t *testing.T) {
	srv := zktest.Shared(t)
	proxy := zktest.NewProxyT(t, srv.Addr)
	paths, l, ns := startReplicaSet(t, proxy.Addr(), srv.Addr, 100, 1000)
	n0, n1 := ns[0], ns[1]

	proxy.Freeze()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rs := coordinator.NewReplicaSet(n1.s, paths, 4, nil)
	// Wait until the master's registration is gone (its session expired):
	// from then on the slave would campaign if it were eligible.
	for {
		_, present, ch, err := rs.MasterW(ctx)
		require.NoError(t, err)
		if !present {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatal("the master's session never expired")
		}
	}
	proxy.Unfreeze()
	awaitStatus(t, n0, leading(0, 2), "the returning master leads a new epoch")
	awaitStatus(t, n1, following(0, 2), "the slave follows it again")
	require.Equal(t, map[int64][]int{1: {0}, 2: {0}}, l.snapshot(), "the slave outside the in-sync set never led")
}

// TestFailoverPlannedSwitchover: metaq cluster promote asks the master to
// hand over to slave 2. The master prepares (Handoff), releases the election,
// slave 2 wins epoch 2 although its log is not the longest, everybody follows
// it, and the request is cleared. A request for a member outside the in-sync
// set is refused with a reason.
func TestFailoverPlannedSwitchover(t *testing.T) {
	srv := zktest.Shared(t)
	paths, l, ns := startReplicaSet(t, srv.Addr, srv.Addr, 100, 100, 50)
	n0, n1, n2 := ns[0], ns[1], ns[2]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, n0.f.WriteISR(ctx, []int{0, 1, 2}))

	admin := coordinator.NewReplicaSet(n1.s, paths, 4, nil)
	require.NoError(t, admin.RequestPromotion(ctx, 2))
	awaitStatus(t, n2, leading(2, 2), "the target leads")
	awaitStatus(t, n0, following(2, 2), "the old master follows the target")
	awaitStatus(t, n1, following(2, 2), "the other slave follows the target")
	require.Equal(t, map[int64][]int{1: {0}, 2: {2}}, l.snapshot())
	n0.role.mu.Lock()
	require.Equal(t, []int{2}, n0.role.handoffs, "the master prepared the handoff to member 2")
	n0.role.mu.Unlock()
	require.Eventually(t, func() bool {
		_, ok, _, err := admin.PromotionW(ctx)
		return err == nil && !ok
	}, 30*time.Second, 20*time.Millisecond, "the request is cleared once done")

	// Member 1 is not in the in-sync set of epoch 2 (only 2 and the live
	// members of the old set are: 0 is not registered as a slave yet when 2 wins).
	require.NoError(t, n2.f.WriteISR(ctx, []int{2, 0}))
	require.NoError(t, admin.RequestPromotion(ctx, 1))
	var pr coordinator.Promotion
	require.Eventually(t, func() bool {
		var ok bool
		var err error
		pr, ok, _, err = admin.PromotionW(ctx)
		return err == nil && ok && pr.State == coordinator.PromotionRefused
	}, 30*time.Second, 20*time.Millisecond)
	require.Contains(t, pr.Reason, "not in the in-sync set")
	require.Equal(t, leading(2, 2), n2.f.Status())
}

// stopNode stops a member as if its process died: the driver stops and the
// session closes (its ephemeral nodes go at once).
func stopNode(t *testing.T, n node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, n.f.Close(ctx))
	n.role.close()
	n.s.Close()
}

// killInSyncPair puts slave 1 into the master's in-sync set, then stops
// both (slave first): the epoch and the set stay in ZooKeeper.
func killInSyncPair(t *testing.T, ns []node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, ns[0].f.WriteISR(ctx, []int{0, 1}))
	stopNode(t, ns[1])
	stopNode(t, ns[0])
}

// TestFailoverWholeReplicaSetRestarts: master and in-sync slave both die;
// the epoch and the in-sync set survive in ZooKeeper. The slave comes back
// first: it is in the set, so it leads a new epoch; the old master comes
// back and follows it. One leader per epoch throughout.
func TestFailoverWholeReplicaSetRestarts(t *testing.T) {
	srv := zktest.Shared(t)
	paths, l, ns := startReplicaSet(t, srv.Addr, srv.Addr, 100, 200)
	killInSyncPair(t, ns)

	n1 := restartNode(t, srv.Addr, paths, l, 1, 200, 1)
	awaitStatus(t, n1, leading(1, 2), "the in-sync slave leads after the restart")
	n0 := restartNode(t, srv.Addr, paths, l, 0, 100, 1)
	awaitStatus(t, n0, following(1, 2), "the old master follows it")
	require.Equal(t, map[int64][]int{1: {0}, 2: {1}}, l.snapshot())
}

// TestFailoverAWipedMemberDoesNotStand: master and in-sync slave both die;
// the slave comes back with a wiped data directory (no epoch history). It
// is still named in the in-sync set but must not lead (its log lacks
// acknowledged messages); the master comes back with its data, leads a new
// epoch, and the wiped slave follows it.
func TestFailoverAWipedMemberDoesNotStand(t *testing.T) {
	srv := zktest.Shared(t)
	paths, l, ns := startReplicaSet(t, srv.Addr, srv.Addr, 100, 100)
	killInSyncPair(t, ns)

	wiped := restartNode(t, srv.Addr, paths, l, 1, 0, 0)
	awaitLog(t, wiped, "in the in-sync set but not standing")
	require.Equal(t, replica.Status{}, wiped.f.Status(), "the wiped member neither leads nor follows")
	n0 := restartNode(t, srv.Addr, paths, l, 0, 100, 1)
	awaitStatus(t, n0, leading(0, 2), "the master with its data leads")
	awaitStatus(t, wiped, following(0, 2), "the wiped member follows")
	require.Equal(t, map[int64][]int{1: {0}, 2: {0}}, l.snapshot(), "the wiped member never led")
}

// TestFailoverSurvivesZooKeeperQuorumLoss: on a 3-server ensemble, losing 2
// servers for longer than the session timeout makes the master give its term
// up (its session is presumed lost: it must not act as master without
// ZooKeeper); when the quorum returns, the members converge on one master of
// a new epoch and the other follows it. One leader per epoch throughout.
func TestFailoverSurvivesZooKeeperQuorumLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node ZooKeeper ensemble")
	}
	ens := zktest.StartEnsembleT(t, 3, zktest.Options{})
	addrs := ens.ConnectString()
	_, l, ns := startReplicaSet(t, addrs, addrs, 100, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	require.NoError(t, ns[0].f.WriteISR(ctx, []int{0, 1}))

	ens.Servers[0].Kill()
	ens.Servers[1].Kill()
	awaitStatus(t, ns[0], replica.Status{Epoch: 1, Master: 0, URI: uri(0)}, "the master gives its term up without a quorum")
	for _, s := range ens.Servers[:2] {
		require.NoError(t, s.Start(ctx))
	}
	require.NoError(t, ens.WaitServing(ctx, 3))

	deadline := time.After(90 * time.Second)
	for {
		ch0, ch1 := ns[0].f.Changed(), ns[1].f.Changed()
		st0, st1 := ns[0].f.Status(), ns[1].f.Status()
		if st0.Epoch >= 2 && st0.Epoch == st1.Epoch && st0.Leading != st1.Leading {
			break
		}
		select {
		case <-ch0:
		case <-ch1:
		case <-deadline:
			t.Fatalf("no single master of a new epoch after the quorum returned: %+v, %+v", st0, st1)
		}
	}
	for e, ms := range l.snapshot() {
		require.Len(t, ms, 1, "epoch %d led by %v", e, ms)
	}
}
