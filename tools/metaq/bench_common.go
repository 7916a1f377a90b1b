package main

import (
	"fmt"
	"io"
	"math/bits"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// benchResult is what every `metaq bench` workload (produce, and later
// consume and e2e) prints: a table, or with --json / -o json one JSON object
// with these fields.
type benchResult struct {
	Workload    string  `json:"workload"`
	Messages    int64   `json:"messages"`
	Failed      int64   `json:"failed"`
	Size        int     `json:"size"`
	Bytes       int64   `json:"bytes"`
	Connections int     `json:"connections"`
	Seconds     float64 `json:"seconds"`
	MsgsPerS    float64 `json:"msgs_per_s"`
	MBPerS      float64 `json:"mb_per_s"` // 10^6 bytes of payload per second
	P50us       float64 `json:"p50_us"`
	P90us       float64 `json:"p90_us"`
	P99us       float64 `json:"p99_us"`
	P999us      float64 `json:"p999_us"`
	MaxUs       float64 `json:"max_us"`
	// CtxSwitchesPerMsg is this process's context switches (voluntary +
	// involuntary, getrusage) per message: thread wake-ups, the client's
	// main cost at moderate rates. RWSyscallsPerMsg is its read- and
	// write-type system calls (/proc/self/io syscr + syscw) per message, 0
	// where that file is missing. Both are counts, so they vary far less
	// than CPU time on a loaded machine.
	CtxSwitchesPerMsg float64 `json:"ctx_switches_per_msg"`
	RWSyscallsPerMsg  float64 `json:"rw_syscalls_per_msg"`
	// CPUUsPerMsg is this client process's CPU time (user + system) per
	// message, in microseconds.
	CPUUsPerMsg float64 `json:"cpu_us_per_msg"`
	CPUUserS    float64 `json:"cpu_user_s"`
	CPUSysS     float64 `json:"cpu_sys_s"`
	// ServerCPUUsPerMsg is the broker's process CPU time per message, in
	// microseconds, when --admin names its admin endpoint (else 0).
	ServerCPUUsPerMsg float64 `json:"server_cpu_us_per_msg,omitempty"`
	ServerCPUS        float64 `json:"server_cpu_s,omitempty"`
	// ServerPutsPerBatch is the broker's puts per store append during the
	// run (metaq_puts_total / metaq_put_batches_total), with --admin.
	ServerPutsPerBatch float64 `json:"server_puts_per_batch,omitempty"`
}

// benchClock measures wall time and this process's CPU time.
type benchClock struct {
	start   time.Time
	ru      syscall.Rusage
	rwCalls int64 // /proc/self/io syscr + syscw; -1 unknown
}

func startBenchClock() (*benchClock, error) {
	c := &benchClock{start: time.Now(), rwCalls: rwSyscalls()}
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &c.ru); err != nil {
		return nil, fmt.Errorf("getrusage: %w", err)
	}
	return c, nil
}

// rwSyscalls returns this process's read- and write-type system calls so
// far (syscr + syscw of /proc/self/io), or -1 where unavailable.
func rwSyscalls() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	var total int64
	found := 0
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "syscr" && k != "syscw") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return -1
		}
		total += n
		found++
	}
	if found != 2 {
		return -1
	}
	return total
}

// finish fills the time, rate and CPU fields of r (Messages, Bytes and the
// latency fields are the caller's).
func (c *benchClock) finish(r *benchResult) error {
	elapsed := time.Since(c.start)
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return fmt.Errorf("getrusage: %w", err)
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	r.Seconds = elapsed.Seconds()
	r.CPUUserS = tv(ru.Utime) - tv(c.ru.Utime)
	r.CPUSysS = tv(ru.Stime) - tv(c.ru.Stime)
	if r.Seconds > 0 {
		r.MsgsPerS = float64(r.Messages) / r.Seconds
		r.MBPerS = float64(r.Bytes) / 1e6 / r.Seconds
	}
	if r.Messages > 0 {
		r.CPUUsPerMsg = (r.CPUUserS + r.CPUSysS) * 1e6 / float64(r.Messages)
		csw := (ru.Nvcsw + ru.Nivcsw) - (c.ru.Nvcsw + c.ru.Nivcsw)
		r.CtxSwitchesPerMsg = float64(csw) / float64(r.Messages)
		if now := rwSyscalls(); now >= 0 && c.rwCalls >= 0 {
			r.RWSyscallsPerMsg = float64(now-c.rwCalls) / float64(r.Messages)
		}
	}
	return nil
}

// latencyHist is a lock-free histogram of latencies (16 sub-buckets per
// power of two of nanoseconds, ~6% precision).
type latencyHist struct {
	b   [640]atomic.Uint64
	max atomic.Int64
}

func (h *latencyHist) add(d time.Duration) {
	v := uint64(max(d, 0))
	i := int(v)
	if v >= 32 {
		e := bits.Len64(v) - 5
		i = 32 + (e-1)*16 + int((v>>e)&15)
	}
	h.b[min(i, len(h.b)-1)].Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

func latBucketMid(i int) float64 {
	if i < 32 {
		return float64(i)
	}
	i -= 32
	e := i/16 + 1
	lo := uint64(16+i%16) << e
	return float64(lo) + float64(uint64(1)<<e)/2
}

// fill sets the latency fields of r in microseconds.
func (h *latencyHist) fill(r *benchResult) {
	var total uint64
	for i := range h.b {
		total += h.b[i].Load()
	}
	r.MaxUs = float64(h.max.Load()) / 1e3
	if total == 0 {
		return
	}
	qs := []struct {
		q   float64
		dst *float64
	}{{0.5, &r.P50us}, {0.9, &r.P90us}, {0.99, &r.P99us}, {0.999, &r.P999us}}
	var seen uint64
	k := 0
	for i := range h.b {
		seen += h.b[i].Load()
		for k < len(qs) && float64(seen) >= qs[k].q*float64(total) {
			*qs[k].dst = min(latBucketMid(i)/1e3, r.MaxUs)
			k++
		}
	}
}

// startCPUProfile writes a CPU profile to path ("" = none) until the
// returned stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	fh, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(fh); err != nil {
		fh.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); fh.Close() }, nil
}

// printBench prints r as one JSON object or as a table.
func printBench(w io.Writer, r benchResult, asJSON bool) error {
	if asJSON {
		return printJSON(w, r)
	}
	f := func(v float64, prec int) string { return fmt.Sprintf("%.*f", prec, v) }
	return printTable(w, []string{"WORKLOAD", "MESSAGES", "FAILED", "SIZE", "CONNS", "SECONDS", "MSGS/S", "MB/S",
		"P50 µs", "P99 µs", "P99.9 µs", "MAX µs", "CPU µs/MSG", "SERVER CPU µs/MSG"},
		[][]string{{r.Workload, fmt.Sprint(r.Messages), fmt.Sprint(r.Failed), fmt.Sprint(r.Size), fmt.Sprint(r.Connections),
			f(r.Seconds, 3), f(r.MsgsPerS, 0), f(r.MBPerS, 1), f(r.P50us, 0), f(r.P99us, 0), f(r.P999us, 0),
			f(r.MaxUs, 0), f(r.CPUUsPerMsg, 2), serverCPUCell(r)}})
}

// serverCPUCell is the SERVER CPU column: "-" without --admin.
func serverCPUCell(r benchResult) string {
	if r.ServerCPUS == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", r.ServerCPUUsPerMsg)
}
