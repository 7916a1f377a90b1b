package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/metaq-go/metaq/internal/latencyhist"
)

type fsyncFlags struct {
	dir      string
	size     int
	count    int
	rate     int
	duration time.Duration
	json     bool
	hist     bool
}

// fsyncCmd measures the floor of an acknowledgement after fsync on the
// volume of --dir, on a new file there (removed afterwards):
//
//   - without --rate, --count rounds of (append --size bytes + fdatasync)
//     back to back, each timed: the cost of one commit cycle of one file;
//   - with --rate, an ideal group commit: messages of --size bytes arrive at
//     --rate per second for --duration, and one committer appends everything
//     queued, fdatasyncs, and acknowledges those messages (latency = ack -
//     arrival): what a broker that did nothing but append and fdatasync would
//     reach at that rate, no network, no wake-ups.
func fsyncCmd(ctx context.Context, args []string, out io.Writer) error {
	var f fsyncFlags
	fs := flag.NewFlagSet("fsync", flag.ContinueOnError)
	fs.StringVar(&f.dir, "dir", "", "directory on the volume to measure (required; a temporary file is made and removed there)")
	fs.IntVar(&f.size, "size", 100, "bytes per append (per message with --rate)")
	fs.IntVar(&f.count, "count", 5000, "rounds, without --rate")
	fs.IntVar(&f.rate, "rate", 0, "messages per second for the group-commit mode (0 = back-to-back rounds)")
	fs.DurationVar(&f.duration, "duration", 5*time.Second, "how long messages arrive, with --rate")
	fs.BoolVar(&f.json, "json", false, "print one JSON object")
	fs.BoolVar(&f.hist, "histogram", false, "include the full latency distribution")
	if err := parse(fs, args); err != nil {
		return err
	}
	if f.dir == "" || f.size <= 0 || f.count <= 0 || f.rate < 0 || f.duration <= 0 {
		return usageError{errors.New("fsync: need --dir, --size > 0, --count > 0, --rate >= 0 and --duration > 0")}
	}
	fh, err := os.CreateTemp(f.dir, "peerbench-fsync-*")
	if err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	defer os.Remove(fh.Name())
	defer fh.Close()
	r := result{Workload: "append+fdatasync", Size: f.size}
	var hist latencyhist.Hist
	c, err := startClock()
	if err != nil {
		return err
	}
	start := time.Now()
	if f.rate == 0 {
		err = fsyncRounds(ctx, fh, f, &hist, &r)
	} else {
		r.Workload = "group-commit"
		err = fsyncGroupCommit(ctx, fh, f, &hist, &r)
	}
	if err != nil {
		return err
	}
	r.Seconds = time.Since(start).Seconds()
	r.MsgsPerS = float64(r.Messages) / r.Seconds
	if err := c.finish(&r); err != nil {
		return err
	}
	r.fill(&hist, f.hist)
	return printResult(out, r, f.json)
}

// appendSync writes n bytes of buf's pattern at off and fdatasyncs.
func appendSync(fh *os.File, buf []byte, off int64) error {
	if _, err := fh.WriteAt(buf, off); err != nil {
		return fmt.Errorf("fsync: write %s: %w", fh.Name(), err)
	}
	if err := syscall.Fdatasync(int(fh.Fd())); err != nil {
		return fmt.Errorf("fsync: fdatasync %s: %w", fh.Name(), err)
	}
	return nil
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

func fsyncRounds(ctx context.Context, fh *os.File, f fsyncFlags, hist *latencyhist.Hist, r *result) error {
	buf := pattern(f.size)
	var off int64
	for i := 0; i < f.count && ctx.Err() == nil; i++ {
		t0 := time.Now()
		if err := appendSync(fh, buf, off); err != nil {
			return err
		}
		hist.Add(time.Since(t0))
		off += int64(f.size)
		r.Messages++
	}
	return nil
}

// fsyncGroupCommit: an arrival goroutine queues timestamps at f.rate (paced
// against the start, like the e2e producers); the committer takes the queue,
// writes that many messages in one append, fdatasyncs, and records each
// message's latency.
func fsyncGroupCommit(ctx context.Context, fh *os.File, f fsyncFlags, hist *latencyhist.Hist, r *result) error {
	var mu sync.Mutex
	var queue []time.Time
	more := make(chan struct{}, 1)
	total := int64(f.rate) * int64(f.duration) / int64(time.Second)
	actx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		interval := time.Second / time.Duration(f.rate)
		t := time.NewTicker(max(interval, time.Millisecond))
		defer t.Stop()
		start := time.Now()
		for sent := int64(0); sent < total && actx.Err() == nil; {
			due := min(total, int64(time.Since(start)/interval)+1)
			mu.Lock()
			for ; sent < due; sent++ {
				queue = append(queue, time.Now())
			}
			mu.Unlock()
			select {
			case more <- struct{}{}:
			default:
			}
			select {
			case <-actx.Done():
			case <-t.C:
			}
		}
	}()
	defer wg.Wait()
	buf := pattern(f.size)
	var off int64
	var batch []time.Time
	for r.Messages < total && ctx.Err() == nil {
		mu.Lock()
		batch, queue = queue, batch[:0]
		mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-more:
			case <-ctx.Done():
			}
			continue
		}
		if need := len(batch) * f.size; len(buf) < need {
			buf = pattern(need)
		}
		if err := appendSync(fh, buf[:len(batch)*f.size], off); err != nil {
			return err
		}
		now := time.Now()
		for _, t := range batch {
			hist.Add(now.Sub(t))
		}
		off += int64(len(batch) * f.size)
		r.Messages += int64(len(batch))
	}
	return nil
}
