package faulttest

import (
	"fmt"
	"slices"
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

// waitEvent waits until member logs an event of kind after the time after
// and returns it.
func (c *cluster) waitEvent(p *proc, kind string, after time.Time, timeout time.Duration) rec {
	c.t.Helper()
	var got rec
	waitFor(c.t, timeout, fmt.Sprintf("event %q of %s", kind, p.name), func() bool {
		recs, _, _ := c.audits.snapshot()
		for _, r := range recs {
			if r.member == p.name && r.ev == kind && r.ts > after.UnixNano() {
				got = r
				return true
			}
		}
		return false
	})
	return got
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
