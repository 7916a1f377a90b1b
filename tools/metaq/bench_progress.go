package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// benchProgress shows a running benchmark's progress on stderr: a live bar
// when stderr is a terminal, else a plain line every second (none when
// quiet, e.g. with --json, so scripts see only the result). It polls count
// from its own goroutine; stop ends it and waits for it.
type benchProgress struct {
	stopCh chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

func startBenchProgress(errOut io.Writer, label string, total int64, quiet bool, count func() (done int64, detail string)) *benchProgress {
	p := &benchProgress{stopCh: make(chan struct{})}
	tty := errOut == io.Writer(os.Stderr) && term.IsTerminal(int(os.Stderr.Fd()))
	if !tty && quiet {
		return p
	}
	var bar *progressbar.ProgressBar
	every := time.Second
	if tty {
		bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(errOut), progressbar.OptionSetDescription(label),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("msg"),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish(),
			progressbar.OptionSetWidth(30))
		every = 100 * time.Millisecond
	}
	start := time.Now()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stopCh:
				if bar != nil {
					_ = bar.Finish()
					_ = bar.Exit()
				}
				return
			case <-t.C:
				n, detail := count()
				if bar != nil {
					if detail != "" {
						bar.Describe(label + " " + detail)
					}
					_ = bar.Set64(n)
					continue
				}
				fmt.Fprintf(errOut, "%s %d/%d messages after %s %s\n", label, n, total,
					time.Since(start).Truncate(time.Second), detail)
			}
		}
	}()
	return p
}

func (p *benchProgress) stop() {
	p.once.Do(func() { close(p.stopCh) })
	p.wg.Wait()
}

// latencyBounds are the upper bounds of the rows of printLatencyHistogram.
var latencyBounds = []time.Duration{100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
	2500 * time.Millisecond, 5 * time.Second}

// printLatencyHistogram prints h as rows "≤ bound  count  percent  bar",
// from the first to the last non-empty row.
func printLatencyHistogram(w io.Writer, title string, h *latencyHist) error {
	counts := h.Counts(latencyBounds)
	var total uint64
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		return nil
	}
	first, last := -1, 0
	var peak uint64
	for i, n := range counts {
		if n > 0 {
			if first < 0 {
				first = i
			}
			last = i
			peak = max(peak, n)
		}
	}
	fmt.Fprintf(w, "\n%s\n", title)
	rows := make([][]string, 0, last-first+1)
	for i := first; i <= last; i++ {
		label := "> " + latencyBounds[len(latencyBounds)-1].String()
		if i < len(latencyBounds) {
			label = "≤ " + latencyBounds[i].String()
		}
		width := int(counts[i] * 40 / peak)
		if counts[i] > 0 && width == 0 {
			width = 1
		}
		rows = append(rows, []string{label, fmt.Sprint(counts[i]), fmt.Sprintf("%.1f%%", 100*float64(counts[i])/float64(total)),
			strings.Repeat("█", width)})
	}
	return printTable(w, []string{"LATENCY", "COUNT", "SHARE", ""}, rows)
}
