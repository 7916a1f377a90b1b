package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/metaq-go/metaq/internal/latencyhist"
)

// fsyncCmd times --count rounds of (append --size bytes at the end of a
// file + fdatasync) on a new file in --dir, back to back: what one
// partition's commit cycle costs at the least on that disk.
func fsyncCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("fsync", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory on the volume to measure (required; a temporary file is made and removed there)")
	size := fs.Int("size", 100, "bytes appended before each fdatasync")
	count := fs.Int("count", 5000, "rounds")
	asJSON := fs.Bool("json", false, "print one JSON object")
	full := fs.Bool("histogram", false, "include the full latency distribution")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || *size <= 0 || *count <= 0 {
		return usageError{errors.New("fsync: need --dir, --size > 0 and --count > 0")}
	}
	fh, err := os.CreateTemp(*dir, "peerbench-fsync-*")
	if err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	defer os.Remove(fh.Name())
	defer fh.Close()
	buf := make([]byte, *size)
	for i := range buf {
		buf[i] = byte('a' + i%26)
	}
	r := result{Workload: "append+fdatasync", Size: *size}
	var hist latencyhist.Hist
	c, err := startClock()
	if err != nil {
		return err
	}
	start := time.Now()
	var off int64
	for i := 0; i < *count && ctx.Err() == nil; i++ {
		t0 := time.Now()
		if _, err := fh.WriteAt(buf, off); err != nil {
			return fmt.Errorf("fsync: write %s: %w", fh.Name(), err)
		}
		if err := syscall.Fdatasync(int(fh.Fd())); err != nil {
			return fmt.Errorf("fsync: fdatasync %s: %w", fh.Name(), err)
		}
		hist.Add(time.Since(t0))
		off += int64(*size)
		r.Messages++
	}
	r.Seconds = time.Since(start).Seconds()
	r.MsgsPerS = float64(r.Messages) / r.Seconds
	if err := c.finish(&r); err != nil {
		return err
	}
	r.fill(&hist, *full)
	return printResult(out, r, *asJSON)
}
