package faulttest

import (
	"testing"
	"time"
)

// The audit places a Poll delivery stamped after SIGCONT at the stop only
// when the Poll call began before the stop; every other record keeps its
// stamp, so a Poll call begun after SIGCONT that hands out a lost
// partition's messages is still judged at its own time.
func TestPollDeliveryTimeAcrossAStop(t *testing.T) {
	base := time.Unix(1000, 0)
	at := func(ms int) int64 { return base.Add(time.Duration(ms) * time.Millisecond).UnixNano() }
	p := &proc{stops: []span{{from: base.Add(100 * time.Millisecond), to: base.Add(3000 * time.Millisecond)}}}
	stopped := at(100) - 1
	for _, c := range []struct {
		name string
		r    rec
		want int64
	}{
		{"handler delivery after the stop", rec{ts: at(3001)}, at(3001)},
		{"poll call begun before, returned after the stop", rec{ts: at(3001), pollStart: at(99)}, stopped},
		{"poll call begun after SIGCONT", rec{ts: at(3002), pollStart: at(3001)}, at(3002)},
		{"poll call inside the run before the stop", rec{ts: at(90), pollStart: at(80)}, at(90)},
		{"event", rec{ts: at(3001), ev: "lost", pollStart: at(99)}, at(3001)},
	} {
		if got := pollDeliveryTime(c.r, p, nil); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	// The same call still waiting when the member, back from the stop, is
	// assigned the partition again: judged at its stamp, under the new
	// ownership (an assignment of another partition, or one before SIGCONT,
	// changes nothing).
	events := []rec{
		{ev: "assigned", arg: "T/1-0", ts: at(50)},
		{ev: "assigned", arg: "T/2-2", ts: at(3500)},
		{ev: "assigned", arg: "T/2-3,T/1-1", ts: at(3600)},
	}
	for _, c := range []struct {
		tp   string
		ts   int64
		want int64
	}{
		{"T/2-3", at(3700), at(3700)},
		{"T/2-3", at(3550), stopped}, // returned before that assignment
		{"T/1-0", at(3700), stopped}, // assigned before the stop only
		{"T/9-9", at(3700), stopped},
	} {
		if got := pollDeliveryTime(rec{tp: c.tp, ts: c.ts, pollStart: at(99)}, p, assignedBetween(events)); got != c.want {
			t.Errorf("%s stamped %d: placed at %d, want %d", c.tp, c.ts, got, c.want)
		}
	}
	open := &proc{stops: []span{{from: base.Add(100 * time.Millisecond)}}} // not resumed yet
	if got := pollDeliveryTime(rec{ts: at(3001), pollStart: at(99)}, open, nil); got != at(3001) {
		t.Errorf("a stop without SIGCONT moved the stamp: %d", got)
	}
	if got := pollDeliveryTime(rec{ts: at(3001), pollStart: at(99)}, nil, nil); got != at(3001) {
		t.Errorf("an unknown member's stamp moved: %d", got)
	}
}
