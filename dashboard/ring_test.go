package dashboard

import (
	"slices"
	"testing"
)

func TestRingKeepsTheLastSamples(t *testing.T) {
	r := NewRing(3)
	if got := r.Values(); len(got) != 0 {
		t.Fatalf("empty ring: %v", got)
	}
	for i := 1; i <= 5; i++ {
		r.Push(float64(i))
	}
	if got := r.Values(); !slices.Equal(got, []float64{3, 4, 5}) || r.Len() != 3 {
		t.Fatalf("after 5 pushes into 3: %v (len %d), want [3 4 5]", got, r.Len())
	}
}

func TestHistoryDropsSeriesNotUpdated(t *testing.T) {
	h := newHistory(4)
	h.push("a", 1)
	h.push("b", 1)
	h.prune()
	h.push("a", 2)
	h.prune()
	if _, ok := h.series["b"]; ok {
		t.Fatal("series b was not updated in the last cycle and is still kept")
	}
	if got := h.series["a"].Values(); !slices.Equal(got, []float64{1, 2}) {
		t.Fatalf("series a: %v", got)
	}
}
