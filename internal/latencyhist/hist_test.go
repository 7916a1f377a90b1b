package latencyhist

import (
	"math"
	"testing"
	"time"
)

func TestQuantilesWithinPrecision(t *testing.T) {
	var h Hist
	for i := 1; i <= 10000; i++ {
		h.Add(time.Duration(i) * time.Microsecond)
	}
	h.Add(-time.Second) // counted as 0
	if h.Count() != 10001 {
		t.Fatalf("Count = %d, want 10001", h.Count())
	}
	if h.Max() != 10*time.Millisecond {
		t.Fatalf("Max = %s, want 10ms", h.Max())
	}
	qs := h.Quantiles(0.5, 0.99, 0.999, 1)
	for i, want := range []float64{5000, 9900, 9990, 10000} {
		got := float64(qs[i]) / 1e3
		if math.Abs(got-want)/want > 0.07 {
			t.Errorf("quantile %d = %.0f µs, want %.0f ±7%%", i, got, want)
		}
	}
	if qs[3] > h.Max() {
		t.Errorf("q=1 %s above the maximum %s", qs[3], h.Max())
	}
}

func TestEmpty(t *testing.T) {
	var h Hist
	if q := h.Quantiles(0.5); q[0] != 0 {
		t.Fatalf("empty p50 = %s", q[0])
	}
	d := h.Distribution(FineBounds)
	if d.Count != 0 || len(d.Buckets) != 0 || len(d.Percentiles) != len(DistributionPercents)+1 {
		t.Fatalf("empty distribution = %+v", d)
	}
}

func TestDistributionBuckets(t *testing.T) {
	var h Hist
	for range 90 {
		h.Add(300 * time.Microsecond)
	}
	for range 10 {
		h.Add(3 * time.Millisecond)
	}
	h.Add(time.Minute)
	bounds := []time.Duration{100 * time.Microsecond, time.Millisecond, 10 * time.Millisecond}
	d := h.Distribution(bounds)
	// First non-empty row (≤ 1 ms) to the last (above every bound).
	want := []Bucket{{1000, 90}, {10000, 10}, {0, 1}}
	if len(d.Buckets) != len(want) {
		t.Fatalf("buckets = %+v, want %+v", d.Buckets, want)
	}
	for i := range want {
		if d.Buckets[i] != want[i] {
			t.Fatalf("buckets = %+v, want %+v", d.Buckets, want)
		}
	}
	last := d.Percentiles[len(d.Percentiles)-1]
	if last.Percent != 100 || last.Micros != 60e6 {
		t.Fatalf("last percentile = %+v, want the maximum 60 s", last)
	}
	for i := 1; i < len(FineBounds); i++ {
		if FineBounds[i] <= FineBounds[i-1] {
			t.Fatalf("FineBounds not ascending at %d: %v", i, FineBounds[i-1:i+1])
		}
	}
}

func TestStamp(t *testing.T) {
	p := Stamped(42, 1234567890, 100)
	if len(p) != 100 {
		t.Fatalf("len = %d", len(p))
	}
	if sent, ok := ReadStamp(p, 42); !ok || sent != 1234567890 {
		t.Fatalf("ReadStamp = %d, %v", sent, ok)
	}
	if _, ok := ReadStamp(p, 43); ok {
		t.Fatal("another run's payload accepted")
	}
	if _, ok := ReadStamp(p[:StampSize-1], 42); ok {
		t.Fatal("a short payload accepted")
	}
	if len(Stamped(1, 1, 3)) != StampSize {
		t.Fatal("a payload shorter than the header")
	}
}

// A Run adds the same counts and maximum as Add, across bucket changes and
// histograms, once flushed.
func TestRunMatchesAdd(t *testing.T) {
	var direct, viaRun, other Hist
	var r Run
	ds := []time.Duration{5, 5, 1000, 1003, 1000, -3, 70000, 5, 1 << 40}
	for i, d := range ds {
		direct.Add(d)
		r.Add(&viaRun, d)
		if i == 4 {
			r.Add(&other, 9) // a run into another histogram in between
		}
	}
	r.Flush()
	r.Flush() // idempotent
	if a, b := direct.Count(), viaRun.Count(); a != b || a != uint64(len(ds)) {
		t.Fatalf("counts %d, %d", a, b)
	}
	if direct.Max() != viaRun.Max() || other.Count() != 1 || other.Max() != 9 {
		t.Fatalf("max %v vs %v, other %d %v", direct.Max(), viaRun.Max(), other.Count(), other.Max())
	}
	for i := range direct.b {
		if direct.b[i].Load() != viaRun.b[i].Load() {
			t.Fatalf("bucket %d: %d vs %d", i, direct.b[i].Load(), viaRun.b[i].Load())
		}
	}
}
