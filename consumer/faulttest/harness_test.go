package faulttest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/producer"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

func TestMain(m *testing.M) {
	if raw := os.Getenv(childEnv); raw != "" {
		os.Exit(runChild(raw))
	}
	os.Exit(zktest.Main(m))
}

const (
	group   = "G"
	topic   = "T"
	session = 2 * time.Second // consumer ZooKeeper session timeout
	// debounce is the leader's default debounce (coordinator.GroupOptions).
	debounce = 300 * time.Millisecond
)

// cluster is one test's ZooKeeper root with brokers, child consumers and an
// audit directory.
type cluster struct {
	t      *testing.T
	zk     string // ZooKeeper address (children may be given a proxy instead)
	root   string
	paths  coordinator.Paths
	parts  []string // "<brokerId>-<partition>" of every partition of topic
	dir    string   // audit logs
	zkc    *zk.Conn // plain client for checks
	brokrs []*broker.Broker
	audits *auditReader

	mu    sync.Mutex // guards procs, seq
	procs []*proc
	seq   int
}

var rootSeq atomic.Int64

func newCluster(t *testing.T, nBrokers, partsPerBroker int) *cluster {
	t.Helper()
	c := &cluster{t: t, zk: zktest.Shared(t).Addr, dir: t.TempDir(), audits: &auditReader{offs: map[string]int64{}}}
	c.root = fmt.Sprintf("/ft%d-%d/meta", time.Now().UnixNano()%1e9, rootSeq.Add(1))
	c.paths = coordinator.NewPaths(c.root)
	for id := 1; id <= nBrokers; id++ {
		c.brokrs = append(c.brokrs, brokertest.Start(t, brokertest.Options{BrokerID: id, Partitions: partsPerBroker,
			ZK: c.zk, ZKRoot: c.root, Modify: func(o *broker.Options) { o.Topics = []string{topic} }}))
		for p := 0; p < partsPerBroker; p++ {
			c.parts = append(c.parts, fmt.Sprintf("%d-%d", id, p))
		}
	}
	conn, _, err := zk.Connect([]string{c.zk}, 10*time.Second, zk.WithLogger(zktest.QuietLogger{}))
	if err != nil {
		t.Fatalf("zk connect: %v", err)
	}
	t.Cleanup(conn.Close)
	c.zkc = conn
	t.Cleanup(c.killAll)
	return c
}

// tpName is how the audit log names a partition of topic.
func tpName(part string) string { return topic + "/" + part }

// ---------------------------------------------------------------- children

// proc is one consumer child process.
type proc struct {
	name   string
	member string // coordinator member id (READY line)
	cmd    *exec.Cmd
	audit  string
	stderr *lockedBuffer
	exited chan struct{}
	err    error // of Wait, valid after exited

	mu       sync.Mutex // guards the fault times below
	killedAt time.Time  // SIGKILL sent (the process delivers nothing after it)
	stops    []span     // SIGSTOP periods: [stopped (state T seen), SIGCONT about to be sent]
}

type span struct{ from, to time.Time }

type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type childOpts struct {
	zk      string        // "" = the cluster's ZooKeeper (else e.g. a proxy)
	work    time.Duration // simulated work per message
	verbose bool          // the child logs at Info (session states)
	poll    bool          // poll style instead of a handler
	flaky   bool          // the handler fails the first attempt at every message
}

// start runs a new consumer child and waits until it has joined the group.
func (c *cluster) start(o childOpts) *proc {
	c.t.Helper()
	c.mu.Lock()
	c.seq++
	name := fmt.Sprintf("c%d", c.seq)
	c.mu.Unlock()
	zkAddr := o.zk
	if zkAddr == "" {
		zkAddr = c.zk
	}
	cfg := childConfig{Name: name, ZK: zkAddr, Root: c.root, Group: group, Topic: topic,
		Audit: filepath.Join(c.dir, name+".audit"), Session: session, AutoCommit: 200 * time.Millisecond, Work: o.work, Verbose: o.verbose, Poll: o.poll, Flaky: o.flaky}
	raw, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	p := &proc{name: name, cmd: cmd, audit: cfg.Audit, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	c.audits.add(cfg.Audit)
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- s
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case p.member = <-ready:
	case <-p.exited:
		c.t.Fatalf("child %s exited before joining: %v\n%s", name, p.err, p.stderr.String())
	case <-time.After(30 * time.Second):
		c.t.Fatalf("child %s not ready within 30s\n%s", name, p.stderr.String())
	}
	return p
}

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// term sends SIGTERM (clean Close) and, with wait, waits for a clean exit.
func (c *cluster) term(p *proc, wait bool) {
	c.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if wait {
		c.waitExit(p, 20*time.Second, true)
	}
}

func (c *cluster) waitExit(p *proc, timeout time.Duration, clean bool) {
	c.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		c.t.Fatalf("child %s did not exit within %v\n%s", p.name, timeout, p.stderr.String())
	}
	if clean && p.err != nil {
		c.t.Fatalf("child %s: %v\n%s", p.name, p.err, p.stderr.String())
	}
}

// kill sends SIGKILL (a crash) and waits for the process to be gone.
func (c *cluster) kill(p *proc) {
	c.t.Helper()
	p.mu.Lock()
	p.killedAt = time.Now()
	p.mu.Unlock()
	_ = p.cmd.Process.Kill()
	c.waitExit(p, 10*time.Second, false)
}

// stop sends SIGSTOP and returns once the kernel reports the process stopped.
func (c *cluster) stop(p *proc) time.Time {
	c.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGSTOP)
	waitFor(c.t, 5*time.Second, p.name+" stopped", func() bool { return procState(p.cmd.Process.Pid) == "T" })
	at := time.Now()
	p.mu.Lock()
	p.stops = append(p.stops, span{from: at})
	p.mu.Unlock()
	return at
}

// cont records the time and then sends SIGCONT: whatever the child logs
// with a later timestamp happened after it resumed.
func (c *cluster) cont(p *proc) time.Time {
	at := time.Now()
	p.mu.Lock()
	p.stops[len(p.stops)-1].to = at
	p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	return at
}

// procState returns the state letter of /proc/<pid>/stat ("" if unknown).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

func (c *cluster) alive() []*proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*proc
	for _, p := range c.procs {
		if p.alive() {
			out = append(out, p)
		}
	}
	return out
}

func (c *cluster) all() []*proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.procs)
}

// termAll closes every live child cleanly and waits for them.
func (c *cluster) termAll() {
	c.t.Helper()
	live := c.alive()
	for _, p := range live {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range live {
		c.waitExit(p, 20*time.Second, true)
	}
}

func (c *cluster) killAll() {
	for _, p := range c.all() {
		if p.alive() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	if c.t.Failed() {
		for _, p := range c.all() {
			if s := p.stderr.String(); s != "" {
				if len(s) > 4000 {
					s = "…" + s[len(s)-4000:]
				}
				c.t.Logf("stderr of %s (%s):\n%s", p.name, p.member, s)
			}
		}
	}
}

// ---------------------------------------------------------------- ZooKeeper views

// owners returns partition → coordinator member id of its owner ("" = none).
func (c *cluster) owners() map[string]string {
	out := map[string]string{}
	for _, part := range c.parts {
		b, p := splitPart(part)
		data, _, err := c.zkc.Get(c.paths.GroupOwner(group, topic, b, p))
		if err != nil {
			out[part] = ""
			continue
		}
		out[part] = string(data)
	}
	return out
}

func splitPart(part string) (int, int) {
	b, p, _ := strings.Cut(part, "-")
	bi, _ := strconv.Atoi(b)
	pi, _ := strconv.Atoi(p)
	return bi, pi
}

// waitOwnedBy waits until every partition is owned by one of the members of
// procs and each of them owns at least one (when there are enough partitions).
func (c *cluster) waitOwnedBy(timeout time.Duration, procs ...*proc) {
	c.t.Helper()
	want := map[string]bool{}
	for _, p := range procs {
		want[p.member] = true
	}
	waitFor(c.t, timeout, fmt.Sprintf("partitions owned by %d members", len(procs)), func() bool {
		has := map[string]bool{}
		for _, m := range c.owners() {
			if !want[m] {
				return false
			}
			has[m] = true
		}
		return len(has) == min(len(want), len(c.parts))
	})
}

// offsetSampler reads the committed offsets every few milliseconds and
// records any that moved backwards.
type offsetSampler struct {
	c       *cluster
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex // guards last, back, samples
	last    map[string]int64
	back    []string
	samples int
}

func (c *cluster) sampleOffsets() *offsetSampler {
	s := &offsetSampler{c: c, stop: make(chan struct{}), done: make(chan struct{}), last: map[string]int64{}}
	go func() {
		defer close(s.done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			for _, part := range c.parts {
				b, p := splitPart(part)
				data, _, err := c.zkc.Get(c.paths.GroupOffset(group, topic, b, p))
				if err != nil {
					continue
				}
				o, err := coordinator.ParseOffset(string(data))
				if err != nil {
					s.mu.Lock()
					s.back = append(s.back, fmt.Sprintf("%s: unparsable offset %q", part, data))
					s.mu.Unlock()
					continue
				}
				s.mu.Lock()
				s.samples++
				if prev, ok := s.last[part]; ok && o.Offset < prev {
					s.back = append(s.back, fmt.Sprintf("%s: committed offset went back from %d to %d at %s",
						part, prev, o.Offset, time.Now().Format("15:04:05.000000")))
				}
				if o.Offset > s.last[part] {
					s.last[part] = o.Offset
				}
				s.mu.Unlock()
			}
		}
	}()
	return s
}

// finish stops sampling and fails the test if an offset went backwards.
func (s *offsetSampler) finish() {
	s.c.t.Helper()
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.t.Logf("offset sampler: %d samples, %d partitions committed, %d backward moves", s.samples, len(s.last), len(s.back))
	for _, b := range s.back {
		s.c.t.Errorf("invariant 3 violated: %s", b)
	}
}

// ---------------------------------------------------------------- producer

// load produces "m<seq>" messages at a bounded rate and records the acked
// sequence numbers.
type load struct {
	p      *producer.Producer
	cancel context.CancelFunc
	stop   chan struct{}
	done   chan struct{}
	sent   atomic.Int64
	failed atomic.Int64
	mu     sync.Mutex // guards acked
	acked  map[int64]bool
}

// produce sends up to total messages (0 = until stopped) at rate per second.
func (c *cluster) produce(rate, total int) *load {
	c.t.Helper()
	nctx, ncancel := context.WithTimeout(context.Background(), 30*time.Second)
	p, err := producer.New(nctx, producer.WithZooKeeper([]string{c.zk}, c.root), producer.WithRetry(50*time.Millisecond, 20))
	ncancel()
	if err != nil {
		c.t.Fatalf("producer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{p: p, cancel: cancel, stop: make(chan struct{}), done: make(chan struct{}), acked: map[int64]bool{}}
	c.t.Cleanup(func() { l.finish(c.t) })
	go func() {
		defer close(l.done)
		const tick = 10 * time.Millisecond
		perTick := max(1, rate*int(tick)/int(time.Second))
		t := time.NewTicker(tick)
		defer t.Stop()
		var seq int64
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
			}
			for range perTick {
				if total > 0 && seq >= int64(total) {
					return
				}
				s := seq
				seq++
				l.sent.Add(1)
				p.SendAsync(ctx, producer.Message{Topic: topic, Payload: []byte(fmt.Sprintf("m%d", s))}, func(_ producer.Result, err error) {
					if err != nil {
						l.failed.Add(1)
						return
					}
					l.mu.Lock()
					l.acked[s] = true
					l.mu.Unlock()
				})
			}
		}
	}()
	return l
}

// halt stops producing and waits for every outstanding acknowledgement.
func (l *load) halt(t *testing.T) {
	t.Helper()
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.p.Flush(ctx); err != nil {
		t.Errorf("producer flush: %v", err)
	}
}

// wait waits until the producer has sent total messages and they are acked.
func (l *load) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(timeout):
		t.Fatalf("producer did not finish within %v (sent %d)", timeout, l.sent.Load())
	}
	l.halt(t)
}

func (l *load) finish(t *testing.T) {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = l.p.Close(ctx)
	l.cancel()
}

func (l *load) ackedSet() map[int64]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return cloneSet(l.acked)
}

func cloneSet(m map[int64]bool) map[int64]bool {
	out := make(map[int64]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ---------------------------------------------------------------- polling

// waitFor polls cond until it holds or timeout passes (no fixed waits: the
// polling interval grows from 1 ms to 20 ms).
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !try(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// try polls cond until it holds (true) or timeout passes (false).
func try(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	d := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(d) // polling interval of a deadline-bounded wait
		d = min(2*d, 20*time.Millisecond)
	}
	return true
}

// pace waits d: only the storm's random schedule of changes uses it (the
// scenario's pacing, never a wait for an effect).
func pace(d time.Duration) { <-time.After(d) }
