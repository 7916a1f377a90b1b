package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// gctx returns a context ending after d or at the end of the test.
func gctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// registerTopic registers topic with parts partitions on each broker in
// topics-sub (persistent nodes: the test plays the brokers).
func registerTopic(t testing.TB, s *zkrecipes.Session, paths coordinator.Paths, topic string, parts int, brokers ...int) {
	t.Helper()
	for _, b := range brokers {
		js, _ := json.Marshal(coordinator.PartitionInfo{NumParts: parts, Broker: coordinator.MasterName(b)})
		p := paths.TopicSub(topic, b)
		_, err := s.CreateParents(gctx(t, 10*time.Second), p, js, zkrecipes.Persistent)
		if errors.Is(err, zk.ErrNodeExists) {
			_, err = s.Set(gctx(t, 10*time.Second), p, js, -1)
		}
		require.NoError(t, err)
	}
}

func allPartitions(topic string, parts int, brokers ...int) []coordinator.TopicPartition {
	var out []coordinator.TopicPartition
	for _, b := range brokers {
		for p := 0; p < parts; p++ {
			out = append(out, coordinator.TopicPartition{Topic: topic, Partition: coordinator.Partition{BrokerID: b, Partition: p}})
		}
	}
	return out
}

// audit records ownership callbacks of all members with their order and
// fails the test if two members ever process one partition at once.
type audit struct {
	t      testing.TB
	mu     sync.Mutex // guards every field below
	active map[coordinator.TopicPartition]string
	held   map[string]map[coordinator.TopicPartition]bool // member → owned (even while suspended)
	susp   map[string]bool
	errs   []string
	log    []string
}

func newAudit(t testing.TB) *audit {
	return &audit{t: t, active: map[coordinator.TopicPartition]string{}, held: map[string]map[coordinator.TopicPartition]bool{},
		susp: map[string]bool{}}
}

func (a *audit) startLocked(m string, tp coordinator.TopicPartition) {
	if o := a.active[tp]; o != "" && o != m {
		a.errs = append(a.errs, fmt.Sprintf("%s started %s while %s still processes it", m, tp, o))
	}
	a.active[tp] = m
}

func (a *audit) stopLocked(m string, tp coordinator.TopicPartition) {
	if a.active[tp] == m {
		delete(a.active, tp)
	}
}

func (a *audit) event(m, what string, tps []coordinator.TopicPartition) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.log = append(a.log, fmt.Sprintf("%s %s %s %v", time.Now().Format("15:04:05.000000"), m, what, tps))
	if a.held[m] == nil {
		a.held[m] = map[coordinator.TopicPartition]bool{}
	}
	switch what {
	case "assigned":
		for _, tp := range tps {
			a.held[m][tp] = true
			if !a.susp[m] {
				a.startLocked(m, tp)
			}
		}
	case "revoked", "lost", "dead":
		for _, tp := range tps {
			delete(a.held[m], tp)
			a.stopLocked(m, tp)
		}
	case "suspended":
		a.susp[m] = true
		for tp := range a.held[m] {
			a.stopLocked(m, tp)
		}
	case "resumed":
		a.susp[m] = false
		for tp := range a.held[m] {
			a.startLocked(m, tp)
		}
	}
}

// kill models a crashed process: it stops processing everything at once.
func (a *audit) kill(m string) {
	a.mu.Lock()
	var tps []coordinator.TopicPartition
	for tp := range a.held[m] {
		tps = append(tps, tp)
	}
	a.mu.Unlock()
	a.event(m, "dead", tps)
}

// owners returns partition → member for partitions actively processed.
func (a *audit) owners() map[coordinator.TopicPartition]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps(a.active)
}

func maps[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (a *audit) check() {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.errs) > 0 {
		a.t.Fatalf("ownership overlaps:\n%s\nlog:\n%s", strings.Join(a.errs, "\n"), strings.Join(a.log, "\n"))
	}
}

// auditHandler reports to an audit and commits an increasing offset on revoke.
type auditHandler struct {
	a  *audit
	id string
	g  func() *coordinator.Group // set after JoinGroup

	mu      sync.Mutex // guards next
	next    int64
	commits func(tp coordinator.TopicPartition, err error)
}

func (h *auditHandler) Assigned(_ context.Context, tps []coordinator.TopicPartition) {
	h.a.event(h.id, "assigned", tps)
}

func (h *auditHandler) Revoked(ctx context.Context, tps []coordinator.TopicPartition) {
	if h.g != nil && h.g() != nil {
		for _, tp := range tps {
			h.mu.Lock()
			h.next++
			n := h.next
			h.mu.Unlock()
			cur, _, err := h.g().FetchOffset(ctx, tp.Topic, tp.BrokerID, tp.Partition.Partition)
			if err == nil {
				err = h.g().CommitOffset(ctx, tp.Topic, tp.BrokerID, tp.Partition.Partition, n, cur.Offset+1)
			}
			if h.commits != nil {
				h.commits(tp, err)
			}
		}
	}
	h.a.event(h.id, "revoked", tps)
}

func (h *auditHandler) Lost(tps []coordinator.TopicPartition) { h.a.event(h.id, "lost", tps) }
func (h *auditHandler) Suspended()                            { h.a.event(h.id, "suspended", nil) }
func (h *auditHandler) Resumed()                              { h.a.event(h.id, "resumed", nil) }

// member is one group member on its own session.
type member struct {
	id string
	s  *zkrecipes.Session
	g  *coordinator.Group
	h  *auditHandler
}

type groupFixture struct {
	t     testing.TB
	addr  string
	root  string
	paths coordinator.Paths
	group string
	admin *zkrecipes.Session
	a     *audit
	opts  coordinator.GroupOptions // template

	onCommit func(tp coordinator.TopicPartition, err error) // set before joining; called by revoke commits
}

func newGroupFixture(t testing.TB, topics ...string) *groupFixture {
	srv := zktest.Shared(t)
	root := uniqueRoot(t)
	f := &groupFixture{t: t, addr: srv.Addr, root: root, paths: coordinator.NewPaths(root), group: "g", a: newAudit(t),
		opts: coordinator.GroupOptions{Group: "g", Topics: topics, Debounce: 50 * time.Millisecond,
			FormingDebounce: 100 * time.Millisecond}}
	f.admin = connect(t, srv.Addr)
	return f
}

func (f *groupFixture) join(id string, mod ...func(*coordinator.GroupOptions)) *member {
	return f.joinVia(f.addr, id, mod...)
}

func (f *groupFixture) joinVia(addr, id string, mod ...func(*coordinator.GroupOptions)) *member {
	f.t.Helper()
	s := connect(f.t, addr)
	return f.joinOn(s, id, mod...)
}

func (f *groupFixture) joinOn(s *zkrecipes.Session, id string, mod ...func(*coordinator.GroupOptions)) *member {
	f.t.Helper()
	m := &member{id: id, s: s}
	m.h = &auditHandler{a: f.a, id: id, commits: f.onCommit}
	opts := f.opts
	opts.MemberID = id
	opts.Handler = m.h
	for _, fn := range mod {
		fn(&opts)
	}
	g, err := coordinator.JoinGroup(gctx(f.t, 20*time.Second), s, f.paths, opts)
	require.NoError(f.t, err)
	m.g = g
	var gmu sync.Mutex
	m.h.g = func() *coordinator.Group { gmu.Lock(); defer gmu.Unlock(); return g }
	f.t.Cleanup(func() { _ = g.Close(context.Background()) })
	return m
}

// waitOwned waits until every partition is actively processed by exactly the
// members' Owned() views agreeing with the audit, and returns the owners.
func (f *groupFixture) waitOwned(within time.Duration, all []coordinator.TopicPartition, ms ...*member) map[coordinator.TopicPartition]string {
	f.t.Helper()
	var owners map[coordinator.TopicPartition]string
	require.Eventually(f.t, func() bool {
		owners = f.a.owners()
		for _, tp := range all {
			if owners[tp] == "" {
				return false
			}
		}
		n := 0
		for _, m := range ms {
			n += len(m.g.Owned())
		}
		return n == len(all)
	}, within, 10*time.Millisecond, "not every partition owned: %v", &owners)
	f.a.check()
	return owners
}

func countBy(owners map[coordinator.TopicPartition]string) map[string]int {
	out := map[string]int{}
	for _, m := range owners {
		out[m]++
	}
	return out
}

// tree lists every node under p (relative), sorted.
func tree(t testing.TB, s *zkrecipes.Session, p string) []string {
	t.Helper()
	ctx := gctx(t, 10*time.Second)
	var out []string
	var walk func(rel string)
	walk = func(rel string) {
		kids, _, err := s.Children(ctx, path.Join(p, rel))
		if errors.Is(err, zk.ErrNoNode) {
			return
		}
		require.NoError(t, err)
		for _, k := range kids {
			out = append(out, path.Join(rel, k))
			walk(path.Join(rel, k))
		}
	}
	walk("")
	sort.Strings(out)
	return out
}

// expire expires s's session for real through the server at addr.
func expire(t testing.TB, addr string, s *zkrecipes.Session) {
	t.Helper()
	require.NoError(t, zktest.ExpireSession(gctx(t, 10*time.Second), addr,
		zktest.Credentials{SessionID: s.ID(), Password: s.Password()}))
}

// watchersPerPath parses `wchp` output: path → number of sessions watching it.
func watchersPerPath(t testing.TB, srv *zktest.Server, under string) map[string]int {
	t.Helper()
	out, err := srv.FourLetter("wchp")
	require.NoError(t, err)
	res := map[string]int{}
	cur := ""
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "/"):
			cur = strings.TrimSpace(line)
		case strings.TrimSpace(line) != "" && cur != "" && strings.HasPrefix(cur, under):
			res[cur]++
		}
	}
	return res
}
