package faulttest

import (
	"fmt"
	"testing"
	"time"
)

// At-least-once end to end: 100,000 messages are produced while every one
// of three consumer processes is restarted once (SIGTERM → clean Close →
// a new process joins). Every acknowledged message must be delivered; the
// duplicates are counted (a clean Close commits what was processed, so the
// consumer documents none: "On a clean rebalance or Close nothing is
// delivered twice"); per-partition order holds within each ownership and
// no partition is ever processed by two members at once.
func TestAtLeastOnceAcrossRollingRestart(t *testing.T) {
	const total = 100_000
	c := newCluster(t, 2, 4)
	samp := c.sampleOffsets()
	procs := []*proc{c.start(childOpts{}), c.start(childOpts{}), c.start(childOpts{})}
	c.waitOwnedBy(20*time.Second, procs...)
	began := time.Now()
	ld := c.produce(10_000, total) // ~10 s: the three restarts happen under load, also with -race

	for i := range procs {
		c.waitProgress(total/8, 30*time.Second, fmt.Sprintf("progress before restart %d", i+1), nil)
		if ld.sent.Load() >= total {
			t.Logf("warning: the producer finished before restart %d (the restarts are not all under load)", i+1)
		}
		old := procs[i]
		c.term(old, true)
		procs[i] = c.start(childOpts{})
		c.waitOwnedBy(20*time.Second, procs...)
		t.Logf("restart %d: %s → %s done at %s, %d sent so far", i+1, old.name, procs[i].name,
			ms(time.Since(began)), ld.sent.Load())
	}
	ld.wait(t, 60*time.Second)
	acked := ld.ackedSet()
	t.Logf("produced %d, acked %d, failed %d in %s", ld.sent.Load(), len(acked), ld.failed.Load(), ms(time.Since(began)))
	if len(acked) < total*99/100 {
		t.Fatalf("only %d of %d messages acked", len(acked), total)
	}
	missing := func() int {
		recs, _, _ := c.audits.snapshot()
		seen := make(map[int64]bool, len(acked))
		for _, r := range recs {
			if r.ev == "" {
				seen[r.seq] = true
			}
		}
		n := 0
		for s := range acked {
			if !seen[s] {
				n++
			}
		}
		return n
	}
	if !try(60*time.Second, func() bool { return missing() == 0 }) {
		t.Errorf("%d acked messages still not delivered after 60 s", missing())
	}
	c.termAll()
	samp.finish()

	recs, bad, err := c.audits.snapshot()
	if err != nil || len(bad) > 0 {
		t.Fatalf("audit logs: %v %q", err, bad)
	}
	an := c.analyze(recs, time.Now())
	an.checkSingleProcessor()
	an.checkSingleOwner()
	count := map[int64]int{}
	for _, d := range an.dels {
		count[d.seq]++
	}
	dups, lostN, worst := 0, 0, 0
	for s, n := range count {
		dups += n - 1
		worst = max(worst, n)
		_ = s
	}
	for s := range acked {
		if count[s] == 0 {
			lostN++
		}
	}
	revocations := 0
	for _, e := range an.epochs {
		if e.endKind == "revoked" {
			revocations++
		}
	}
	t.Logf("deliveries %d, distinct %d, duplicates %d (max %d deliveries of one message), lost %d; %d partition revocations, %d ownership epochs",
		len(an.dels), len(count), dups, worst, lostN, revocations, len(an.epochs))
	if lostN > 0 {
		t.Errorf("%d acknowledged messages were never delivered", lostN)
	}
	if dups > 0 {
		t.Errorf("%d duplicate deliveries across clean restarts (the consumer documents none for a clean rebalance or Close)", dups)
	}
	an.report(c)
}
