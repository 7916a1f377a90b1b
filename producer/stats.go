package producer

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Hooks observe the producer. Every field is optional. Hooks run on the
// producer's goroutines (often a connection's reader): keep them fast and
// non-blocking. msg is valid only during the call.
type Hooks struct {
	// OnAck runs when a broker acknowledged a message.
	OnAck func(msg *Message, res Result, latency time.Duration)
	// OnError runs when a message failed for good (after retries).
	OnError func(msg *Message, err error)
	// OnRetry runs before a message is retried (attempt counts from 1).
	OnRetry func(msg *Message, attempt int, err error)
	// OnConnect runs after a connection to a broker was made (err == nil) or
	// could not be made.
	OnConnect func(addr string, err error)
}

// Stats is a snapshot of the producer's counters.
type Stats struct {
	Sent     uint64 // messages acknowledged
	Bytes    uint64 // payload bytes acknowledged
	Failed   uint64 // messages reported failed
	Retried  uint64 // retry attempts
	InFlight int64  // accepted, not yet reported
	Dials    uint64 // connections made
	// Latency of acknowledged messages, from SendAsync to acknowledgement,
	// from a histogram with about 6% precision.
	LatencyP50, LatencyP90, LatencyP99, LatencyP999, LatencyMax time.Duration
}

// counters are updated with atomics on the hot path.
type counters struct {
	sent, bytes, failed, retried, dials atomic.Uint64
	maxLat                              atomic.Int64
	hist                                histogram
}

// histogram buckets nanoseconds with 16 sub-buckets per power of two.
type histogram struct {
	b [600]atomic.Uint64
}

const subBits = 4

func bucketOf(v uint64) int {
	if v < 1<<(subBits+1) {
		return int(v)
	}
	e := bits.Len64(v) - (subBits + 1)
	m := (v >> e) & (1<<subBits - 1)
	return 1<<(subBits+1) + (e-1)<<subBits + int(m)
}

// bucketMid is a representative value of bucket i.
func bucketMid(i int) uint64 {
	if i < 1<<(subBits+1) {
		return uint64(i)
	}
	i -= 1 << (subBits + 1)
	e := i>>subBits + 1
	m := uint64(i&(1<<subBits-1)) | 1<<subBits
	lo := m << e
	return lo + (uint64(1)<<e)/2
}

func (h *histogram) add(d time.Duration) {
	i := bucketOf(uint64(max(d, 0)))
	if i >= len(h.b) {
		i = len(h.b) - 1
	}
	h.b[i].Add(1)
}

// quantiles returns the values at the given fractions (ascending).
func (h *histogram) quantiles(qs ...float64) []time.Duration {
	var counts [len(histogram{}.b)]uint64
	var total uint64
	for i := range h.b {
		counts[i] = h.b[i].Load()
		total += counts[i]
	}
	out := make([]time.Duration, len(qs))
	if total == 0 {
		return out
	}
	var seen uint64
	qi := 0
	for i, c := range counts {
		seen += c
		for qi < len(qs) && float64(seen) >= qs[qi]*float64(total) {
			out[qi] = time.Duration(bucketMid(i))
			qi++
		}
	}
	return out
}
