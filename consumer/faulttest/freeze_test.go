package faulttest

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// RELIABILITY.md row "consumer cut off from ZooKeeper by the network
// (process keeps running)": one of three consumer processes talks to
// ZooKeeper through a fault proxy that is frozen (bytes held in both
// directions, no connection closed) while its brokers stay reachable and a
// backlog keeps it busy. It must stop delivering before its session can
// expire on the server: its last delivery comes before any other member
// first delivers one of its partitions (and before its session timeout has
// passed since the freeze). After the network heals it rejoins.
func TestCutOffFromZooKeeperStopsBeforeExpiry(t *testing.T) {
	c := newCluster(t, 2, 4)
	proxy := zktest.NewProxyT(t, c.zk)
	samp := c.sampleOffsets()
	work := childOpts{work: 5 * time.Millisecond}
	p2 := c.start(work) // the leader stays reachable
	p1 := c.start(childOpts{work: work.work, zk: proxy.Addr(), verbose: true})
	p3 := c.start(work)
	c.waitOwnedBy(20*time.Second, p1, p2, p3)
	ld := c.produce(2000, 0)
	c.waitProgress(300, 20*time.Second, "victim consuming", func(m string) bool { return m == p1.name })

	victim := c.partsOf(p1)
	frozenAt := time.Now()
	proxy.Freeze()
	t.Logf("froze the proxy at %s", fmtTS(frozenAt.UnixNano()))
	c.waitOwnedBy(session+debounce+5*time.Second, p2, p3)
	c.waitTakenOver(p1, victim, frozenAt, 10*time.Second)
	t.Cleanup(func() { // the victim's view of its session, for the log
		var lines []string
		for l := range strings.SplitSeq(p1.stderr.String(), "\n") {
			if strings.Contains(l, "session state") || strings.Contains(l, "suspend") || strings.Contains(l, "lost") {
				lines = append(lines, l)
			}
		}
		t.Logf("victim's session states:\n%s", strings.Join(lines, "\n"))
	})
	// The member must report the partitions lost once its session is
	// presumed lost (a session timeout after it last heard from ZooKeeper),
	// without waiting for the network to come back.
	lost, ok := c.tryEvent(p1, "lost", frozenAt, session+5*time.Second)
	if !ok {
		// Where is it stuck? SIGQUIT makes the Go runtime dump every goroutine.
		_ = p1.cmd.Process.Signal(syscall.SIGQUIT)
		c.waitExit(p1, 10*time.Second, false)
		t.Errorf("bug: the cut-off member did not report its partitions Lost within %s of the freeze although its session "+
			"was presumed lost (zkrecipes state=lost); its member loop is blocked in a ZooKeeper call (see the goroutines), "+
			"so the Lost callback (and the cancellation of in-flight handlers) waits for the network; goroutines:\n%s",
			session+5*time.Second, goroutineDump(p1.stderr.String()))
	}
	thawedAt := time.Now()
	proxy.Unfreeze()
	if ok {
		c.waitOwnedBy(20*time.Second, p1, p2, p3)
		c.waitProgress(50, 20*time.Second, "reconnected member consuming again", func(m string) bool { return m == p1.name })
	}
	ld.halt(t)
	c.termAll()
	samp.finish()

	recs, bad, err := c.audits.snapshot()
	if err != nil || len(bad) > 0 {
		t.Fatalf("audit logs: %v %q", err, bad)
	}
	an := c.analyze(recs, time.Now())
	an.checkSingleProcessor()
	an.checkSingleOwner()

	// The victim's last delivery of the ownership it had when frozen.
	var last int64
	for _, e := range an.epochs {
		if e.member == p1.name && e.start < frozenAt.UnixNano() && len(e.dels) > 0 {
			for _, ts := range e.dels {
				if ts < thawedAt.UnixNano() {
					last = max(last, ts)
				}
			}
		}
	}
	var suspended int64
	for _, s := range an.suspended[p1.name] {
		if s > frozenAt.UnixNano() {
			suspended = s
			break
		}
	}
	assigned, delivered := takeover(an, p1, victim, frozenAt)
	var firstOther int64
	for _, d := range delivered {
		if firstOther == 0 || d < firstOther {
			firstOther = d
		}
	}
	var firstAssigned int64
	for _, a := range assigned {
		if firstAssigned == 0 || a < firstAssigned {
			firstAssigned = a
		}
	}
	rel := func(ns int64) string {
		if ns == 0 {
			return "never"
		}
		return ms(time.Duration(ns - frozenAt.UnixNano()))
	}
	if !ok {
		lost.ts = 0
	}
	t.Logf("victim %s owned %v; after the freeze: last delivery %s, suspended %s, lost %s; other members: first assigned %s, first delivery %s (session timeout %s)",
		p1.name, victim, rel(last), rel(suspended), rel(lost.ts), rel(firstAssigned), rel(firstOther), session)
	switch {
	case last == 0:
		t.Errorf("the victim delivered nothing while owning its partitions")
	case firstOther == 0:
		t.Errorf("nobody took the victim's partitions over")
	case last >= firstOther:
		t.Errorf("the cut-off member delivered at %s, after another member started on its partitions at %s",
			rel(last), rel(firstOther))
	}
	if suspended == 0 {
		t.Errorf("the cut-off member never reported itself suspended")
	} else if suspended-frozenAt.UnixNano() >= int64(session) {
		t.Errorf("the cut-off member suspended itself only %s after the freeze, not before its session (%s) could expire",
			rel(suspended), session)
	}
	if last-frozenAt.UnixNano() >= int64(session) {
		t.Errorf("the cut-off member delivered %s after the freeze, when its session (%s) may have expired", rel(last), session)
	}
	an.report(c)
}
