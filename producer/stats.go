package producer

import (
	"sync/atomic"
	"time"

	"github.com/metaq-go/metaq/internal/latencyhist"
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
	// from a histogram with about 6% precision. While more than 64 messages
	// are in flight one in 8 is timed (a sample; LatencyMax is the largest
	// sampled); otherwise, and with an OnAck hook, every one is.
	LatencyP50, LatencyP90, LatencyP99, LatencyP999, LatencyMax time.Duration
}

// counters are updated with atomics on the hot path.
type counters struct {
	sent, bytes, failed, retried, dials atomic.Uint64
	hist                                latencyhist.Hist // acknowledgement latencies
}
