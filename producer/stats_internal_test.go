package producer

import (
	"testing"
	"time"
)

func TestHistogramBucketsAreMonotonicAndPrecise(t *testing.T) {
	prev := -1
	for v := uint64(0); v < 1<<40; v = v*17/16 + 1 {
		i := bucketOf(v)
		if i < prev {
			t.Fatalf("bucketOf(%d) = %d < %d", v, i, prev)
		}
		prev = i
		mid := bucketMid(i)
		if v >= 32 {
			if err := float64(mid)/float64(v) - 1; err > 0.07 || err < -0.07 {
				t.Fatalf("bucketMid(bucketOf(%d)) = %d: %.1f%% off", v, mid, err*100)
			}
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	q := h.quantiles(0.5, 0.99)
	for k, want := range []time.Duration{500 * time.Microsecond, 990 * time.Microsecond} {
		if d := float64(q[k])/float64(want) - 1; d > 0.07 || d < -0.07 {
			t.Errorf("quantile %d = %v, want about %v", k, q[k], want)
		}
	}
}
