package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/metaq-go/metaq/internal/latencyhist"
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
	// GoMaxProcs is the client process's GOMAXPROCS: at low rates its CPU
	// per message depends on it (with idle Ps every wake-up of a goroutine
	// also wakes a spinning thread; GOMAXPROCS=1 has none of those).
	GoMaxProcs int `json:"gomaxprocs"`
	// ServerCPUUsPerMsg is the broker's process CPU time per message, in
	// microseconds, when --admin names its admin endpoint (else 0).
	ServerCPUUsPerMsg float64 `json:"server_cpu_us_per_msg,omitempty"`
	ServerCPUS        float64 `json:"server_cpu_s,omitempty"`
	// ServerPutsPerBatch is the broker's puts per store append during the
	// run (metaq_puts_total / metaq_put_batches_total), with --admin.
	ServerPutsPerBatch float64 `json:"server_puts_per_batch,omitempty"`
	// Histogram is the full latency distribution (percentiles 50..99.99,
	// the maximum, and buckets of latencyhist.FineBounds), with --histogram.
	Histogram *latencyhist.Distribution `json:"histogram,omitempty"`
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
	r.GoMaxProcs = runtime.GOMAXPROCS(0)
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

// latencyHist is the benchmarks' latency histogram (internal/latencyhist,
// shared with tools/peerbench so their percentiles compare directly).
type latencyHist struct{ latencyhist.Hist }

func (h *latencyHist) add(d time.Duration) { h.Add(d) }

// fill sets the latency fields of r in microseconds.
func (h *latencyHist) fill(r *benchResult) {
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	r.MaxUs = us(h.Max())
	q := h.Quantiles(0.5, 0.9, 0.99, 0.999)
	r.P50us, r.P90us, r.P99us, r.P999us = us(q[0]), us(q[1]), us(q[2]), us(q[3])
}

// printDistribution prints d as two tables: the percentiles, then the
// buckets ("≤ bound  count  share  cumulative  bar").
func printDistribution(w io.Writer, title string, d *latencyhist.Distribution) error {
	if d == nil || d.Count == 0 {
		return nil
	}
	us := func(v float64) string { return time.Duration(v * 1e3).Round(time.Microsecond).String() }
	fmt.Fprintf(w, "\n%s\n", title)
	var rows [][]string
	for _, p := range d.Percentiles {
		label := strconv.FormatFloat(p.Percent, 'f', -1, 64) + "%"
		if p.Percent == 100 {
			label = "max"
		}
		rows = append(rows, []string{label, us(p.Micros)})
	}
	if err := printTable(w, []string{"PERCENTILE", "LATENCY"}, rows); err != nil {
		return err
	}
	var peak, seen uint64
	for _, b := range d.Buckets {
		peak = max(peak, b.Count)
	}
	rows = rows[:0]
	for _, b := range d.Buckets {
		label := "> " + us(latencyhist.FineBoundsMaxMicros())
		if b.UpperMicros > 0 {
			label = "≤ " + us(b.UpperMicros)
		}
		seen += b.Count
		width := int(b.Count * 40 / peak)
		if b.Count > 0 && width == 0 {
			width = 1
		}
		rows = append(rows, []string{label, fmt.Sprint(b.Count), fmt.Sprintf("%.2f%%", 100*float64(b.Count)/float64(d.Count)),
			fmt.Sprintf("%.3f%%", 100*float64(seen)/float64(d.Count)), strings.Repeat("█", width)})
	}
	fmt.Fprintln(w)
	return printTable(w, []string{"LATENCY", "COUNT", "SHARE", "CUMULATIVE", ""}, rows)
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
