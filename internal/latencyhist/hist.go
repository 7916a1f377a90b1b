// Package latencyhist is the latency histogram of the benchmark tools
// (`metaq bench`, tools/peerbench): lock-free, 16 sub-buckets per power of
// two of nanoseconds (about 6% precision), so every tool's percentiles come
// from the same buckets and compare directly.
package latencyhist

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// nBuckets covers up to 2^43 ns (~2.4 hours); larger values land in the last.
const nBuckets = 640

// Hist counts durations. The zero value is ready; Add is safe for
// concurrent use.
type Hist struct {
	b   [nBuckets]atomic.Uint64
	max atomic.Int64
}

func bucketOf(v uint64) int {
	if v < 32 {
		return int(v)
	}
	e := bits.Len64(v) - 5
	return min(32+(e-1)*16+int((v>>e)&15), nBuckets-1)
}

// bucketMid is a representative value (the middle) of bucket i.
func bucketMid(i int) time.Duration {
	if i < 32 {
		return time.Duration(i)
	}
	i -= 32
	e := i/16 + 1
	lo := uint64(16+i%16) << e
	return time.Duration(lo + (uint64(1)<<e)/2)
}

// Add counts one duration (a negative one as 0).
func (h *Hist) Add(d time.Duration) {
	d = max(d, 0)
	h.b[bucketOf(uint64(d))].Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// Run adds durations to a Hist from one goroutine with one atomic add per
// run of consecutive durations in the same bucket instead of one per
// duration (the acknowledgements of one read are mostly alike). Flush
// publishes what it holds. The zero value is ready; a Run is not safe for
// concurrent use.
type Run struct {
	h   *Hist
	i   int    // the run's bucket
	n   uint64 // durations in the run
	max int64  // the largest since the last Flush
}

// Add counts d (a negative one as 0) into h.
func (r *Run) Add(h *Hist, d time.Duration) {
	d = max(d, 0)
	i := bucketOf(uint64(d))
	if r.n > 0 && (i != r.i || h != r.h) {
		r.flushRun()
	}
	r.h, r.i = h, i
	r.n++
	r.max = max(r.max, int64(d))
}

// flushRun adds the current run to its histogram.
func (r *Run) flushRun() {
	r.h.b[r.i].Add(r.n)
	r.n = 0
	for m := r.h.max.Load(); r.max > m && !r.h.max.CompareAndSwap(m, r.max); m = r.h.max.Load() {
	}
	r.max = 0
}

// Flush adds what the run holds to its histogram.
func (r *Run) Flush() {
	if r.n > 0 {
		r.flushRun()
	}
}

// Max is the largest duration added (exact).
func (h *Hist) Max() time.Duration { return time.Duration(h.max.Load()) }

// snapshot copies the counts and returns their total.
func (h *Hist) snapshot() (counts [nBuckets]uint64, total uint64) {
	for i := range h.b {
		counts[i] = h.b[i].Load()
		total += counts[i]
	}
	return counts, total
}

// Count is the number of durations added.
func (h *Hist) Count() uint64 {
	_, total := h.snapshot()
	return total
}

// Quantiles returns the durations at the fractions qs (each in 0..1, in
// ascending order), never above Max; all 0 when the histogram is empty.
func (h *Hist) Quantiles(qs ...float64) []time.Duration {
	counts, total := h.snapshot()
	out := make([]time.Duration, len(qs))
	if total == 0 {
		return out
	}
	top := h.Max()
	var seen uint64
	k := 0
	for i, n := range counts {
		seen += n
		for k < len(qs) && float64(seen) >= qs[k]*float64(total) {
			out[k] = min(bucketMid(i), top)
			k++
		}
	}
	for ; k < len(qs); k++ { // rounding left a fraction near 1 unmet
		out[k] = top
	}
	return out
}

// Percentile is one row of a latency distribution.
type Percentile struct {
	Percent float64 `json:"percent"` // e.g. 99.9
	Micros  float64 `json:"us"`
}

// Bucket is one row of a bucketed histogram: Count durations in
// (previous bound, UpperMicros]; UpperMicros 0 on the last row means "above
// every bound".
type Bucket struct {
	UpperMicros float64 `json:"le_us"`
	Count       uint64  `json:"count"`
}

// Distribution is a histogram in a printable and JSON-friendly form.
type Distribution struct {
	Count       uint64       `json:"count"`
	Percentiles []Percentile `json:"percentiles"` // DistributionPercents, then 100 (= the maximum)
	Buckets     []Bucket     `json:"buckets"`     // the bounds given, from the first to the last non-empty row
}

// DistributionPercents are the percentiles a Distribution lists (the
// maximum follows as 100).
var DistributionPercents = []float64{50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99}

// Distribution returns the percentiles of DistributionPercents and the
// maximum, and the counts per bucket of the ascending bounds (a last row
// counts what lies above them).
func (h *Hist) Distribution(bounds []time.Duration) Distribution {
	qs := make([]float64, len(DistributionPercents))
	for i, p := range DistributionPercents {
		qs[i] = p / 100
	}
	d := Distribution{Count: h.Count()}
	for i, v := range h.Quantiles(qs...) {
		d.Percentiles = append(d.Percentiles, Percentile{Percent: DistributionPercents[i], Micros: micros(v)})
	}
	d.Percentiles = append(d.Percentiles, Percentile{Percent: 100, Micros: micros(h.Max())})
	counts := h.Counts(bounds)
	first, last := -1, -1
	for i, n := range counts {
		if n > 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	for i := first; i >= 0 && i <= last; i++ {
		b := Bucket{Count: counts[i]}
		if i < len(bounds) {
			b.UpperMicros = micros(bounds[i])
		}
		d.Buckets = append(d.Buckets, b)
	}
	return d
}

// Counts returns how many durations fall at or below each of the ascending
// bounds (and above the previous one), plus a last element for those above
// every bound. A duration is placed by its bucket's middle.
func (h *Hist) Counts(bounds []time.Duration) []uint64 {
	out := make([]uint64, len(bounds)+1)
	for i := range h.b {
		n := h.b[i].Load()
		if n == 0 {
			continue
		}
		mid := bucketMid(i)
		row := len(bounds)
		for j, b := range bounds {
			if mid <= b {
				row = j
				break
			}
		}
		out[row] += n
	}
	return out
}

// FineBounds are bucket bounds of 4 per power of two from 16 µs to ~34 s
// (about 19% wide): a histogram fine enough to show where a tail starts.
var FineBounds = func() []time.Duration {
	var out []time.Duration
	for e := 14; e < 35; e++ { // 2^14 ns = 16.4 µs
		for q := range 4 {
			out = append(out, time.Duration((4+q)<<e/4))
		}
	}
	return out
}()

// FineBoundsMaxMicros is the last of FineBounds in microseconds (the
// "above" row of a Distribution over them).
func FineBoundsMaxMicros() float64 { return micros(FineBounds[len(FineBounds)-1]) }

func micros(d time.Duration) float64 { return float64(d) / 1e3 }
