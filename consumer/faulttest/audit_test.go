package faulttest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rec is one audit line.
type rec struct {
	ts     int64
	member string
	ev     string // event kind; "" for a delivery
	tp     string // delivery: "<topic>/<b>-<p>"
	off    int64
	seq    int64
	arg    string // event argument
	// pollStart: a delivery by Poll, when the Poll call began (unix nanos);
	// 0 for a handler's delivery.
	pollStart int64
}

// auditReader tails every child's audit file.
type auditReader struct {
	mu    sync.Mutex // guards everything below
	files []string
	offs  map[string]int64
	recs  []rec
	bad   []string
	dels  int
}

func (a *auditReader) add(path string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.files = append(a.files, path)
}

// poll reads the complete lines appended since the last poll.
func (a *auditReader) poll() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, path := range a.files {
		f, err := os.Open(path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		_, err = f.Seek(a.offs[path], io.SeekStart)
		var data []byte
		if err == nil {
			data, err = io.ReadAll(f)
		}
		f.Close()
		if err != nil {
			return err
		}
		end := bytes.LastIndexByte(data, '\n')
		if end < 0 {
			continue
		}
		a.offs[path] += int64(end + 1)
		for line := range strings.SplitSeq(string(data[:end]), "\n") {
			r, ok := parseRec(line)
			if !ok {
				a.bad = append(a.bad, path+": "+line)
				continue
			}
			if r.ev == "" {
				a.dels++
			}
			a.recs = append(a.recs, r)
		}
	}
	return nil
}

func parseRec(line string) (rec, bool) {
	f := strings.Fields(line)
	if len(f) < 4 {
		return rec{}, false
	}
	ts, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return rec{}, false
	}
	r := rec{ts: ts, member: f[1]}
	if f[2] == "event" {
		r.ev = f[3]
		r.arg = strings.Join(f[4:], " ")
		return r, true
	}
	if len(f) != 6 && len(f) != 7 {
		return rec{}, false
	}
	if len(f) == 7 {
		if r.pollStart, err = strconv.ParseInt(f[6], 10, 64); err != nil {
			return rec{}, false
		}
	}
	r.tp = f[2] + "/" + f[3]
	if r.off, err = strconv.ParseInt(f[4], 10, 64); err != nil {
		return rec{}, false
	}
	if r.seq, err = strconv.ParseInt(f[5], 10, 64); err != nil {
		return rec{}, false
	}
	return r, true
}

// snapshot polls once more and returns every record read so far.
func (a *auditReader) snapshot() ([]rec, []string, error) {
	err := a.poll()
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.recs), slices.Clone(a.bad), err
}

// waitProgress waits until n more deliveries than now were logged by the
// members accepted by who (nil = any).
func (c *cluster) waitProgress(n int, timeout time.Duration, what string, who func(member string) bool) {
	c.t.Helper()
	count := func() int {
		recs, _, _ := c.audits.snapshot()
		k := 0
		for _, r := range recs {
			if r.ev == "" && (who == nil || who(r.member)) {
				k++
			}
		}
		return k
	}
	base := count()
	waitFor(c.t, timeout, fmt.Sprintf("%d more deliveries (%s)", n, what), func() bool { return count() >= base+n })
}

// ---------------------------------------------------------------- ownership analysis

// epoch is one member's ownership of one partition: from an "assigned" event
// to the "revoked"/"lost" event that ends it (or the process's death).
type epoch struct {
	member  string
	tp      string
	start   int64 // assigned event
	end     int64 // revoked/lost event; 0 = never logged
	endKind string
	dels    []int64 // delivery timestamps
	offs    []int64 // delivery offsets
	effEnd  int64   // when the member stopped being able to process it (see analyze)
}

func (e *epoch) first() int64 { return e.dels[0] }
func (e *epoch) last() int64  { return e.dels[len(e.dels)-1] }

// analysis is what the audit logs say about ownership.
type analysis struct {
	epochs    []*epoch
	byTP      map[string][]*epoch
	problems  []string // invariant violations
	notes     []string // odd but legal things
	suspended map[string][]int64
	events    map[string][]rec // member → its events in order
	dels      []rec
}

// analyze builds ownership epochs from the records. deathOf returns when a
// member's process could no longer process anything (SIGKILL sent) or zero;
// stopsOf its SIGSTOP periods; horizon closes epochs still open.
func (c *cluster) analyze(recs []rec, horizon time.Time) *analysis {
	an := &analysis{byTP: map[string][]*epoch{}, suspended: map[string][]int64{}, events: map[string][]rec{}}
	procs := map[string]*proc{}
	for _, p := range c.all() {
		procs[p.name] = p
	}
	raw := map[string][]rec{}
	for _, r := range recs {
		raw[r.member] = append(raw[r.member], r)
	}
	byMember := map[string][]rec{}
	for _, r := range recs {
		r.ts = pollDeliveryTime(r, procs[r.member], assignedBetween(raw[r.member]))
		byMember[r.member] = append(byMember[r.member], r)
	}
	members := make([]string, 0, len(byMember))
	for m := range byMember {
		members = append(members, m)
	}
	slices.Sort(members)
	for _, m := range members {
		rs := byMember[m]
		slices.SortStableFunc(rs, func(a, b rec) int { return cmpInt(a.ts, b.ts) })
		open := map[string]*epoch{}
		for _, r := range rs {
			switch r.ev {
			case "":
				an.dels = append(an.dels, r)
				e := open[r.tp]
				if e == nil {
					an.problems = append(an.problems, fmt.Sprintf("%s delivered %s offset %d at %s without owning it (no open assignment)",
						m, r.tp, r.off, fmtTS(r.ts)))
					continue
				}
				if n := len(e.offs); n > 0 && r.off <= e.offs[n-1] {
					an.problems = append(an.problems, fmt.Sprintf("%s delivered %s offset %d after offset %d (out of order)", m, r.tp, r.off, e.offs[n-1]))
				}
				e.dels = append(e.dels, r.ts)
				e.offs = append(e.offs, r.off)
			case "assigned":
				an.events[m] = append(an.events[m], r)
				for _, tp := range splitTPs(r.arg) {
					if open[tp] != nil {
						an.problems = append(an.problems, fmt.Sprintf("%s assigned %s twice without a revocation at %s", m, tp, fmtTS(r.ts)))
						continue
					}
					e := &epoch{member: m, tp: tp, start: r.ts}
					open[tp] = e
					an.epochs = append(an.epochs, e)
					an.byTP[tp] = append(an.byTP[tp], e)
				}
			case "revoked", "lost":
				an.events[m] = append(an.events[m], r)
				for _, tp := range splitTPs(r.arg) {
					e := open[tp]
					if e == nil {
						an.problems = append(an.problems, fmt.Sprintf("%s %s %s it did not own at %s", m, r.ev, tp, fmtTS(r.ts)))
						continue
					}
					e.end, e.endKind = r.ts, r.ev
					delete(open, tp)
				}
			case "suspended":
				an.suspended[m] = append(an.suspended[m], r.ts)
				an.events[m] = append(an.events[m], r)
			default:
				an.events[m] = append(an.events[m], r)
			}
		}
	}
	// Effective end: the earliest of the end event, the SIGKILL, the start
	// of a SIGSTOP inside the epoch and (for an epoch ended by a loss) the
	// first suspension inside it; the horizon for epochs still open.
	for _, e := range an.epochs {
		end := horizon.UnixNano()
		if e.end != 0 {
			end = e.end
		}
		if p := procs[e.member]; p != nil {
			p.mu.Lock()
			if !p.killedAt.IsZero() && p.killedAt.UnixNano() > e.start {
				end = min(end, p.killedAt.UnixNano())
			}
			for _, s := range p.stops {
				if f := s.from.UnixNano(); f > e.start && f < end {
					end = f
				}
			}
			p.mu.Unlock()
		}
		// A suspension inside the epoch that no "resumed" follows before
		// the end: the member stopped handing out messages there.
		var susp int64
		for _, r := range an.events[e.member] {
			if r.ts <= e.start || r.ts >= end {
				continue
			}
			switch r.ev {
			case "suspended":
				if susp == 0 {
					susp = r.ts
				}
			case "resumed":
				susp = 0
			}
		}
		if susp != 0 {
			end = susp
		}
		if len(e.dels) > 0 {
			end = max(end, e.last()) // never before what it actually did
		}
		e.effEnd = end
	}
	return an
}

// pollDeliveryTime is when r was handed out, as far as the audit can tell.
// A delivery's stamp is taken when its handler is called, or — poll style —
// when Poll returned; Poll handed the message out (its last ownership check)
// somewhere between the call's start and that stamp. When the member's
// process was stopped (SIGSTOP) inside that interval, the stamp is after
// SIGCONT even if the message was handed out before the stop, while its
// owner still held the partition. Such a delivery is placed at the stop:
// what the audit can prove is only that it was handed out before the stamp.
// A Poll that really hands out a lost partition's messages after SIGCONT is
// still caught: the next Poll calls start after SIGCONT, and the stopped
// member holds fetched batches of every partition it owned. The stamp is
// kept when the member was assigned the partition again between SIGCONT and
// the stamp (reassigned): the same Poll call, still waiting, may then hand
// out that new ownership's messages, which the stop's time would wrongly
// judge against the ownership before the stop.
func pollDeliveryTime(r rec, p *proc, reassigned func(tp string, from, to int64) bool) int64 {
	if r.ev != "" || r.pollStart == 0 || p == nil {
		return r.ts
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.stops {
		if !s.to.IsZero() && r.pollStart < s.from.UnixNano() && r.ts > s.to.UnixNano() {
			if reassigned != nil && reassigned(r.tp, s.to.UnixNano(), r.ts) {
				return r.ts
			}
			return s.from.UnixNano() - 1
		}
	}
	return r.ts
}

// assignedBetween returns whether the member of recs (its audit records)
// was assigned tp in (from, to].
func assignedBetween(recs []rec) func(tp string, from, to int64) bool {
	return func(tp string, from, to int64) bool {
		for _, e := range recs {
			if e.ev == "assigned" && e.ts > from && e.ts <= to && slices.Contains(splitTPs(e.arg), tp) {
				return true
			}
		}
		return false
	}
}

// checkSingleProcessor verifies invariant 1 from deliveries: for each
// partition, the delivery spans [first, last] of different members' epochs
// never overlap.
func (an *analysis) checkSingleProcessor() {
	for tp, es := range an.byTP {
		var ds []*epoch
		for _, e := range es {
			if len(e.dels) > 0 {
				ds = append(ds, e)
			}
		}
		slices.SortFunc(ds, func(a, b *epoch) int { return cmpInt(a.first(), b.first()) })
		for j := range ds {
			for i := range j {
				a, b := ds[i], ds[j]
				if a.member != b.member && b.first() <= a.last() {
					an.problems = append(an.problems, fmt.Sprintf("two processors of %s: %s delivered %s..%s (%d msgs), %s delivered %s..%s (%d msgs)",
						tp, a.member, fmtTS(a.first()), fmtTS(a.last()), len(a.dels), b.member, fmtTS(b.first()), fmtTS(b.last()), len(b.dels)))
				}
			}
		}
	}
}

// checkSingleOwner verifies that the effective ownership intervals
// [assigned, effEnd] of different members never overlap (the logged
// interval lies inside the real one: assigned is logged after the owner
// node became the lowest, revoked before it is deleted).
func (an *analysis) checkSingleOwner() {
	for tp, es := range an.byTP {
		s := slices.Clone(es)
		slices.SortFunc(s, func(a, b *epoch) int { return cmpInt(a.start, b.start) })
		for j := range s {
			for i := range j {
				a, b := s[i], s[j]
				if a.member != b.member && b.start < a.effEnd {
					an.problems = append(an.problems, fmt.Sprintf("double ownership of %s: %s held it %s..%s (%s), %s assigned at %s",
						tp, a.member, fmtTS(a.start), fmtTS(a.effEnd), a.endKind, b.member, fmtTS(b.start)))
				}
			}
		}
	}
}

// maxUnowned returns, per partition, the longest time within [from, to]
// in which no member owned it (by effective intervals), and the overall max.
func (an *analysis) maxUnowned(parts []string, from, to time.Time) (map[string]time.Duration, time.Duration, string) {
	out := map[string]time.Duration{}
	var worst time.Duration
	var where string
	for _, part := range parts {
		tp := tpName(part)
		s := slices.Clone(an.byTP[tp])
		slices.SortFunc(s, func(a, b *epoch) int { return cmpInt(a.start, b.start) })
		cur := from.UnixNano()
		var gap int64
		var at int64
		for _, e := range s {
			if e.effEnd <= cur {
				continue
			}
			if e.start > cur {
				if g := min(e.start, to.UnixNano()) - cur; g > gap {
					gap, at = g, cur
				}
			}
			cur = max(cur, e.effEnd)
			if cur >= to.UnixNano() {
				break
			}
		}
		if cur < to.UnixNano() && to.UnixNano()-cur > gap {
			gap, at = to.UnixNano()-cur, cur
		}
		d := time.Duration(gap)
		out[tp] = d
		if d > worst {
			worst, where = d, fmt.Sprintf("%s from %s", tp, fmtTS(at))
		}
	}
	return out, worst, where
}

// timeline describes every ownership of tp (for logs).
func (an *analysis) timeline(tp string) string {
	s := slices.Clone(an.byTP[tp])
	slices.SortFunc(s, func(a, b *epoch) int { return cmpInt(a.start, b.start) })
	var b strings.Builder
	for _, e := range s {
		kind := e.endKind
		if kind == "" {
			kind = "no end event"
		}
		fmt.Fprintf(&b, "\n\t%s %s..%s (%s at %s), %d deliveries", e.member, fmtTS(e.start), fmtTS(e.effEnd), kind, fmtTS(e.end), len(e.dels))
	}
	return b.String()
}

func (an *analysis) report(c *cluster) {
	c.t.Helper()
	for _, n := range an.notes {
		c.t.Log(n)
	}
	for i, p := range an.problems {
		if i == 30 {
			c.t.Errorf("... and %d more problems", len(an.problems)-30)
			break
		}
		c.t.Errorf("invariant violated: %s", p)
	}
}

func splitTPs(arg string) []string {
	if arg == "" || arg == "-" {
		return nil
	}
	return strings.Split(arg, ",")
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func fmtTS(ns int64) string { return time.Unix(0, ns).Format("15:04:05.000000") }
