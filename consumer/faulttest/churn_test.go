package faulttest

import (
	"testing"
	"time"
)

// Invariant 1 of docs/REBALANCE.md under churn: consumer processes join,
// leave cleanly (SIGTERM), crash (SIGKILL, including the leader) and are
// stopped past their session timeout (SIGSTOP … SIGCONT) while a producer
// keeps a backlog. Afterwards the audit logs must show no partition
// processed by two members at once, every delivery inside an ownership of
// its member, per-partition order within an ownership, no delivery by the
// resumed member of what it owned before it was stopped, and committed
// offsets that never went backwards.
func TestChurnNeverTwoOwners(t *testing.T) {
	c := newCluster(t, 2, 4)
	samp := c.sampleOffsets()
	work := childOpts{work: 5 * time.Millisecond}
	p1, p2, p3 := c.start(work), c.start(work), c.start(work)
	c.waitOwnedBy(20*time.Second, p1, p2, p3)
	ld := c.produce(2000, 0)
	progress := func(what string) { c.waitProgress(200, 20*time.Second, what, nil) }
	progress("start")
	began := time.Now()
	step := func(what string) { t.Logf("%6s %s", ms(time.Since(began)), what) }

	// Crash of the leader, then a join.
	c.kill(p1)
	step("SIGKILL c1 (leader)")
	p4 := c.start(work)
	c.waitOwnedBy(session+debounce+5*time.Second, p2, p3, p4)
	step("c4 joined, balanced")
	progress("after the crash")

	// Clean leave, then a join.
	c.term(p2, true)
	c.waitOwnedBy(10*time.Second, p3, p4)
	step("SIGTERM c2, balanced")
	p5 := c.start(work)
	c.waitOwnedBy(10*time.Second, p3, p4, p5)
	step("c5 joined, balanced")
	progress("after the leave")

	// Stopped past the session timeout, then resumed.
	victim := c.partsOf(p3)
	stoppedAt := c.stop(p3)
	c.waitOwnedBy(session+debounce+5*time.Second, p4, p5)
	c.waitTakenOver(p3, victim, stoppedAt, 10*time.Second)
	contAt := c.cont(p3)
	step("SIGSTOP c3 past its session, SIGCONT")
	c.waitOwnedBy(20*time.Second, p3, p4, p5)
	step("c3 rejoined, balanced")
	progress("after the stop")

	// A crash, a clean leave and a join at once.
	c.kill(p4)
	c.term(p5, false)
	p6 := c.start(work)
	c.waitExit(p5, 20*time.Second, true)
	c.waitOwnedBy(session+debounce+5*time.Second, p3, p6)
	step("SIGKILL c4 + SIGTERM c5 + c6 joined, balanced")
	p7 := c.start(work)
	c.waitOwnedBy(10*time.Second, p3, p6, p7)
	step("c7 joined, balanced")
	progress("end")
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
	if zs := zombieDeliveries(an, p3, stoppedAt, contAt); len(zs) > 0 {
		for _, z := range zs {
			t.Errorf("self-fencing failed: %s", z)
		}
		t.Logf("the resumed member after SIGCONT:%s", afterCont(an, p3, stoppedAt, contAt))
	}
	t.Logf("%d deliveries, %d ownership epochs over %d processes", len(an.dels), len(an.epochs), len(c.all()))
	an.report(c)
}
