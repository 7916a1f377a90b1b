package faulttest

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// RELIABILITY.md row "consumer paused (SIGSTOP) past its ZooKeeper session
// timeout, then resumed": three consumer processes share 8 partitions with
// a backlog (so every consumer has fetched, undelivered batches in memory);
// the group's leader is stopped until its session expired and the others
// took its partitions over, then resumed. Its partitions must be reassigned
// within session timeout + debounce + 5 s; after SIGCONT it must deliver
// nothing of them (self-fencing) and its commits must be refused (fenced);
// committed offsets never go backwards; it rejoins and consumes again.
func TestStoppedConsumerIsReplacedAndFenced(t *testing.T) {
	testStopped(t, childOpts{work: 5 * time.Millisecond})
}

// The same with consumers in poll style (WithTopics + Poll): Poll must not
// hand out anything of the old partitions after SIGCONT either.
func TestStoppedPollConsumerIsReplacedAndFenced(t *testing.T) {
	testStopped(t, childOpts{work: 200 * time.Microsecond, poll: true}) // one poll loop per process: keep up
}

// The same with a handler that fails the first attempt at every message,
// so the stopped consumer is most likely sleeping before a retry when it is
// stopped. The retry must be fenced like a first delivery: the woken process
// hands nothing of its old partitions to the handler again. (Before the fix
// a retry called the handler without checking ownership: the woken process
// retried its message right after SIGCONT, while another member owned the
// partition.)
func TestStoppedRetryingConsumerDeliversNothingAfterWaking(t *testing.T) {
	testStopped(t, childOpts{work: 2 * time.Millisecond, flaky: true})
}

func testStopped(t *testing.T, work childOpts) {
	c := newCluster(t, 2, 4)
	samp := c.sampleOffsets()
	verbose := work
	verbose.verbose = true
	p1 := c.start(verbose) // first member: the leader
	p2 := c.start(work)
	p3 := c.start(work)
	c.waitOwnedBy(20*time.Second, p1, p2, p3)
	ld := c.produce(2000, 0) // more than the 3×(8/3)×200 msg/s the consumers handle: a backlog
	c.waitProgress(300, 20*time.Second, "victim consuming", func(m string) bool { return m == p1.name })

	victim := c.partsOf(p1)
	if len(victim) == 0 {
		t.Fatal("the victim owns nothing")
	}
	stoppedAt := c.stop(p1)
	limit := session + debounce + 5*time.Second
	c.waitOwnedBy(limit, p2, p3)
	c.waitTakenOver(p1, victim, stoppedAt, 10*time.Second)
	contAt := c.cont(p1)
	_ = p1.cmd.Process.Signal(syscall.SIGUSR1) // zombie-commit probe, right after resuming
	lost := c.waitEvent(p1, "lost", contAt, 10*time.Second)
	c.waitOwnedBy(20*time.Second, p1, p2, p3) // rejoined with a new session
	c.waitProgress(50, 20*time.Second, "resumed member consuming again", func(m string) bool { return m == p1.name })
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

	assigned, delivered := takeover(an, p1, victim, stoppedAt)
	if len(assigned) != len(victim) {
		t.Errorf("only %d of the victim's %d partitions were assigned elsewhere: %v", len(assigned), len(victim), assigned)
	}
	reassign, firstDel := maxOf(assigned, stoppedAt), maxOf(delivered, stoppedAt)
	t.Logf("victim %s (leader) owned %v; stopped %s, resumed %s (stopped %s)", p1.name, victim,
		fmtTS(stoppedAt.UnixNano()), fmtTS(contAt.UnixNano()), ms(contAt.Sub(stoppedAt)))
	t.Logf("reassignment after SIGSTOP: all assigned elsewhere after %s, all delivered elsewhere after %s (limit %s)",
		ms(reassign), ms(firstDel), ms(limit))
	if reassign > limit {
		t.Errorf("reassignment took %s, want ≤ session %s + debounce %s + 5 s", ms(reassign), session, debounce)
	}
	var fence time.Duration
	for _, ev := range an.events[p1.name] {
		if ev.ts > contAt.UnixNano() && (ev.ev == "suspended" || ev.ev == "lost") {
			fence = time.Duration(ev.ts - contAt.UnixNano())
			break
		}
	}
	t.Logf("after SIGCONT: first suspended/lost event after %s, lost event after %s", ms(fence), ms(time.Duration(lost.ts-contAt.UnixNano())))
	for _, part := range victim {
		if !strings.Contains(","+lost.arg+",", ","+tpName(part)+",") {
			t.Errorf("the resumed member's lost event %q does not include %s", lost.arg, tpName(part))
		}
	}
	if zs := zombieDeliveries(an, p1, stoppedAt, contAt); len(zs) > 0 {
		for _, z := range zs {
			t.Errorf("self-fencing failed: %s", z)
		}
		t.Logf("the resumed member after SIGCONT:%s", afterCont(an, p1, stoppedAt, contAt))
	}

	// The zombie-commit probe: every commit of a victim partition refused.
	probed := map[string]string{}
	for _, ev := range an.events[p1.name] {
		if ev.ev != "zcommit" {
			continue
		}
		f := strings.SplitN(ev.arg, ":", 3)
		if len(f) == 3 {
			probed[f[0]] = f[2]
		}
	}
	for _, part := range victim {
		res, ok := probed[tpName(part)]
		switch {
		case !ok:
			t.Errorf("no zombie commit probe result for %s", tpName(part))
		case res == "ok":
			t.Errorf("zombie commit of %s after the session expired was accepted", tpName(part))
		}
	}
	t.Logf("zombie commit probe results: %v", probed)
	an.report(c)
}
