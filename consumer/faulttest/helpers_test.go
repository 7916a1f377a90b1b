package faulttest

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// partsOf returns the partitions ZooKeeper says member owns now.
func (c *cluster) partsOf(p *proc) []string {
	var out []string
	for part, m := range c.owners() {
		if m == p.member {
			out = append(out, part)
		}
	}
	slices.Sort(out)
	return out
}

// waitTakenOver waits until every one of parts was delivered by a member
// other than victim after the time after.
func (c *cluster) waitTakenOver(victim *proc, parts []string, after time.Time, timeout time.Duration) {
	c.t.Helper()
	waitFor(c.t, timeout, fmt.Sprintf("deliveries of %v by members other than %s", parts, victim.name), func() bool {
		recs, _, _ := c.audits.snapshot()
		seen := map[string]bool{}
		for _, r := range recs {
			if r.ev == "" && r.member != victim.name && r.ts > after.UnixNano() {
				seen[r.tp] = true
			}
		}
		for _, part := range parts {
			if !seen[tpName(part)] {
				return false
			}
		}
		return true
	})
}

// tryEvent is waitEvent that reports a timeout instead of failing.
func (c *cluster) tryEvent(p *proc, kind string, after time.Time, timeout time.Duration) (rec, bool) {
	var got rec
	ok := try(timeout, func() bool {
		recs, _, _ := c.audits.snapshot()
		for _, r := range recs {
			if r.member == p.name && r.ev == kind && r.ts > after.UnixNano() {
				got = r
				return true
			}
		}
		return false
	})
	return got, ok
}

// goroutineDump keeps the goroutines of a SIGQUIT dump that run the group
// member (coordinator.(*Group) methods).
func goroutineDump(stderr string) string {
	i := strings.Index(stderr, "goroutine ")
	if i < 0 {
		return stderr
	}
	var keep []string
	for g := range strings.SplitSeq(stderr[i:], "\n\n") {
		if strings.Contains(g, "coordinator.(*Group)") {
			keep = append(keep, g)
		}
	}
	return strings.Join(keep, "\n\n")
}

// waitEvent waits until member logs an event of kind after the time after
// and returns it.
func (c *cluster) waitEvent(p *proc, kind string, after time.Time, timeout time.Duration) rec {
	c.t.Helper()
	r, ok := c.tryEvent(p, kind, after, timeout)
	if !ok {
		c.t.Fatalf("timed out after %v waiting for event %q of %s", timeout, kind, p.name)
	}
	return r
}

// takeover measures, for each of victim's parts, when another member was
// first assigned it and first delivered from it after the time from.
func takeover(an *analysis, victim *proc, parts []string, from time.Time) (assigned, delivered map[string]int64) {
	assigned, delivered = map[string]int64{}, map[string]int64{}
	for _, part := range parts {
		tp := tpName(part)
		for _, e := range an.byTP[tp] {
			if e.member == victim.name || e.start < from.UnixNano() {
				continue
			}
			if a, ok := assigned[tp]; !ok || e.start < a {
				assigned[tp] = e.start
			}
			if len(e.dels) > 0 {
				if d, ok := delivered[tp]; !ok || e.first() < d {
					delivered[tp] = e.first()
				}
			}
		}
	}
	return assigned, delivered
}

// zombieDeliveries returns the deliveries of victim's partitions that it
// made after resuming (after) in an ownership epoch that began before it
// was stopped (stoppedAt): self-fencing must prevent every one of them.
func zombieDeliveries(an *analysis, victim *proc, stoppedAt, after time.Time) []string {
	var out []string
	for _, e := range an.epochs {
		if e.member != victim.name || e.start >= stoppedAt.UnixNano() {
			continue
		}
		n, first := 0, int64(0)
		for i, ts := range e.dels {
			if ts > after.UnixNano() {
				if n == 0 {
					first = e.offs[i]
				}
				n++
			}
		}
		if n > 0 {
			out = append(out, fmt.Sprintf("%s delivered %d message(s) of %s after SIGCONT (from offset %d) in the ownership that began before SIGSTOP (ended: %s at %s)",
				victim.name, n, e.tp, first, e.endKind, fmtTS(e.end)))
		}
	}
	return out
}

func maxOf(m map[string]int64, base time.Time) time.Duration {
	var d time.Duration
	for _, v := range m {
		d = max(d, time.Duration(v-base.UnixNano()))
	}
	return d
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

// afterCont lists, relative to SIGCONT, the resumed member's deliveries of
// its old ownership, its events and its session-state log lines.
func afterCont(an *analysis, victim *proc, stoppedAt, contAt time.Time) string {
	var lines []string
	rel := func(ns int64) string { return fmt.Sprintf("%+.3f ms", float64(ns-contAt.UnixNano())/1e6) }
	for _, e := range an.epochs {
		if e.member != victim.name || e.start >= stoppedAt.UnixNano() {
			continue
		}
		for i, ts := range e.dels {
			if ts > contAt.UnixNano() {
				lines = append(lines, fmt.Sprintf("%s delivery %s offset %d", rel(ts), e.tp, e.offs[i]))
			}
		}
	}
	for _, r := range an.events[victim.name] {
		if r.ts > contAt.UnixNano() {
			lines = append(lines, fmt.Sprintf("%s event %s %s", rel(r.ts), r.ev, r.arg))
		}
	}
	for l := range strings.SplitSeq(victim.stderr.String(), "\n") {
		if !strings.Contains(l, "session state") {
			continue
		}
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time="))
		if err == nil && ts.After(contAt.Add(-time.Millisecond)) {
			lines = append(lines, fmt.Sprintf("%s log %s", rel(ts.UnixNano()), l))
		}
	}
	slices.SortFunc(lines, func(a, b string) int {
		var x, y float64
		fmt.Sscanf(a, "%f", &x)
		fmt.Sscanf(b, "%f", &y)
		return cmpInt(int64(x*1e6), int64(y*1e6))
	})
	return "\n\t" + strings.Join(lines, "\n\t")
}
