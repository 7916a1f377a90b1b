// Command peerbench measures what metaq's latency is compared against, on
// the same machine and in the same run as `metaq bench e2e`
// (scripts/bench-latency.sh runs them alternately):
//
//	peerbench redis-e2e --addr 127.0.0.1:6379 --rate 10000 --duration 5s --size 100 --json
//	peerbench fsync --dir /data --size 100 --count 5000 --json
//
// redis-e2e is `metaq bench e2e` for Redis Streams: producers XADD at a
// fixed rate (pipelined, several connections, so a slow reply does not hold
// back the next sends), a consumer XREAD BLOCKs in another goroutine, and
// latency = receive time - the send time carried in the payload. fsync
// times one append + fdatasync on a file of --dir: the floor of an
// acknowledgement after fsync on that disk.
//
// It is a module of its own so the Redis client stays out of metaq's
// dependencies. Percentiles come from the same histogram as metaq's
// (internal/latencyhist).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/metaq-go/metaq/internal/latencyhist"
)

// result mirrors the fields of `metaq bench --json` that compare.
type result struct {
	Workload          string                    `json:"workload"`
	Messages          int64                     `json:"messages"`
	Failed            int64                     `json:"failed"`
	Size              int                       `json:"size"`
	Seconds           float64                   `json:"seconds"`
	MsgsPerS          float64                   `json:"msgs_per_s"`
	P50us             float64                   `json:"p50_us"`
	P90us             float64                   `json:"p90_us"`
	P99us             float64                   `json:"p99_us"`
	P999us            float64                   `json:"p999_us"`
	MaxUs             float64                   `json:"max_us"`
	CPUUsPerMsg       float64                   `json:"cpu_us_per_msg"`
	CtxSwitchesPerMsg float64                   `json:"ctx_switches_per_msg"`
	Histogram         *latencyhist.Distribution `json:"histogram,omitempty"`
}

// fill sets the latency fields from h (and the histogram when full).
func (r *result) fill(h *latencyhist.Hist, full bool) {
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	q := h.Quantiles(0.5, 0.9, 0.99, 0.999)
	r.P50us, r.P90us, r.P99us, r.P999us, r.MaxUs = us(q[0]), us(q[1]), us(q[2]), us(q[3]), us(h.Max())
	if full {
		d := h.Distribution(latencyhist.FineBounds)
		r.Histogram = &d
	}
}

// clock measures this process's CPU time and context switches.
type clock struct{ ru syscall.Rusage }

func startClock() (*clock, error) {
	c := &clock{}
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &c.ru); err != nil {
		return nil, fmt.Errorf("getrusage: %w", err)
	}
	return c, nil
}

func (c *clock) finish(r *result) error {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return fmt.Errorf("getrusage: %w", err)
	}
	if r.Messages == 0 {
		return nil
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	cpu := tv(ru.Utime) - tv(c.ru.Utime) + tv(ru.Stime) - tv(c.ru.Stime)
	r.CPUUsPerMsg = cpu * 1e6 / float64(r.Messages)
	r.CtxSwitchesPerMsg = float64(ru.Nvcsw+ru.Nivcsw-c.ru.Nvcsw-c.ru.Nivcsw) / float64(r.Messages)
	return nil
}

func printResult(w io.Writer, r result, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		return enc.Encode(r)
	}
	fmt.Fprintf(w, "%s: %d messages (%d failed), %d B, %.0f msgs/s; p50 %.0f µs, p90 %.0f, p99 %.0f, p99.9 %.0f, max %.0f; client CPU %.2f µs/msg\n",
		r.Workload, r.Messages, r.Failed, r.Size, r.MsgsPerS, r.P50us, r.P90us, r.P99us, r.P999us, r.MaxUs, r.CPUUsPerMsg)
	if r.Histogram != nil {
		for _, p := range r.Histogram.Percentiles {
			fmt.Fprintf(w, "  p%-6s %10.0f µs\n", fmt.Sprint(p.Percent), p.Micros)
		}
		for _, b := range r.Histogram.Buckets {
			fmt.Fprintf(w, "  ≤ %8.0f µs %8d\n", b.UpperMicros, b.Count)
		}
	}
	return nil
}

// usageError is a wrong command line: exit status 2.
type usageError struct{ error }

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "peerbench:", err)
		if errors.As(err, new(usageError)) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	const usage = "usage: peerbench redis-e2e|fsync [flags] (-h for the flags of each)"
	if len(args) == 0 {
		return usageError{errors.New(usage)}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "redis-e2e":
		return redisE2ECmd(ctx, args[1:], out)
	case "fsync":
		return fsyncCmd(ctx, args[1:], out)
	}
	return usageError{fmt.Errorf("unknown command %q; %s", args[0], usage)}
}

// parse parses fs, turning a flag error into a usageError.
func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("%s: unexpected arguments %q", fs.Name(), fs.Args())}
	}
	return nil
}
