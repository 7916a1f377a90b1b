package faulttest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// stormLength bounds the storm (RELIABILITY.md: "bounded in time").
const stormLength = 20 * time.Second

// RELIABILITY.md row "rebalance storm: consumers joining and leaving at
// random": for 20 s consumer processes join, leave cleanly or crash at
// random instants (1 to 5 alive, never none). No partition may stay unowned
// for more than 10 s (from the rebalance events: an ownership runs from
// "assigned" to "revoked"/"lost", or to the SIGKILL) and none is ever owned
// or processed by two members at once.
func TestRebalanceStorm(t *testing.T) {
	c := newCluster(t, 2, 4)
	samp := c.sampleOffsets()
	work := childOpts{work: time.Millisecond}
	live := []*proc{c.start(work), c.start(work)}
	c.waitOwnedBy(20*time.Second, live...)
	ld := c.produce(1000, 0)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	t.Logf("storm seed %d", seed)

	from := time.Now()
	end := from.Add(stormLength)
	var leaving []*proc
	var actions []string
	joins, terms, kills := 0, 0, 0
	for time.Now().Before(end) {
		// The storm's own random schedule: the next change comes 100–1200 ms after the last.
		pace(time.Duration(100+rng.IntN(1100)) * time.Millisecond)
		switch n := len(live); {
		case n <= 1 || (n < 5 && rng.IntN(2) == 0):
			at := time.Now()
			p := c.start(work)
			live = append(live, p)
			joins++
			actions = append(actions, fmt.Sprintf("%s start %s (%s), ready %s", fmtTS(at.UnixNano()), p.name, p.member, fmtTS(time.Now().UnixNano())))
		default:
			i := rng.IntN(n)
			p := live[i]
			live = append(live[:i], live[i+1:]...)
			actions = append(actions, fmt.Sprintf("%s leave %s", fmtTS(time.Now().UnixNano()), p.name))
			if rng.IntN(10) < 3 {
				c.kill(p)
				kills++
			} else {
				c.term(p, false) // its Close runs while the storm goes on
				leaving = append(leaving, p)
				terms++
			}
		}
	}
	stormEnd := time.Now()
	for _, p := range leaving {
		c.waitExit(p, 20*time.Second, true)
	}
	c.waitOwnedBy(session+debounce+5*time.Second, live...)
	settled := time.Now()
	c.waitProgress(100, 20*time.Second, "consuming after the storm", nil)
	horizon := time.Now()
	ld.halt(t)
	c.termAll()
	samp.finish()

	recs, bad, err := c.audits.snapshot()
	if err != nil || len(bad) > 0 {
		t.Fatalf("audit logs: %v %q", err, bad)
	}
	an := c.analyze(recs, horizon)
	an.checkSingleProcessor()
	an.checkSingleOwner()
	per, worst, where := an.maxUnowned(c.parts, from, horizon)
	t.Logf("storm %s: %d joins, %d clean leaves, %d crashes, %d processes in all; settled %s after the storm",
		ms(stormEnd.Sub(from)), joins, terms, kills, len(c.all()), ms(settled.Sub(stormEnd)))
	t.Logf("max unowned time %s (%s); per partition %v", ms(worst), where, per)
	t.Logf("%d deliveries, %d ownership epochs", len(an.dels), len(an.epochs))
	if tp, _, ok := strings.Cut(where, " "); ok {
		t.Logf("ownerships of %s:%s", tp, an.timeline(tp))
		for _, p := range c.all() {
			p.mu.Lock()
			if !p.killedAt.IsZero() {
				t.Logf("%s (%s) SIGKILL at %s", p.name, p.member, fmtTS(p.killedAt.UnixNano()))
			}
			p.mu.Unlock()
		}
	}
	if testing.Verbose() {
		t.Logf("storm actions:\n\t%s", strings.Join(actions, "\n\t"))
		var evs []string
		for m, rs := range an.events {
			for _, r := range rs {
				evs = append(evs, fmt.Sprintf("%s %s %s %s", fmtTS(r.ts), m, r.ev, r.arg))
			}
		}
		slices.Sort(evs)
		t.Logf("events:\n\t%s", strings.Join(evs, "\n\t"))
	}
	if worst > 10*time.Second {
		t.Errorf("partition %s unowned for %s, want ≤ 10 s", where, ms(worst))
	}
	an.report(c)
}
