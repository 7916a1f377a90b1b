package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkSyncCandidates compares the ways to make many files durable in
// one commit cycle (docs/BENCHMARKS.md, "Many partitions"): each op appends
// 1,920 bytes to every file, then syncs them one after another, with
// fdatasync 16 or 64 at a time, or with one syncfs — or, the broker-wide
// journal candidates (not built in the store), appends the cycle's records
// to one journal file and fdatasyncs only that: "journal" still writes every
// file each cycle (never synced, but a syncfs checkpoint per 64 MiB of
// journal is charged), "journal-writebehind" writes a file only once its
// buffer reaches 64 KiB. cpu-ms/op is the process's CPU time per cycle.
//
//	go test -run '^$' -bench SyncCandidates -benchtime 20x ./broker/store/
func BenchmarkSyncCandidates(b *testing.B) {
	for _, n := range []int{1, 4, 16, 100, 1000} {
		for _, how := range []string{"sequential-fsync", "fdatasync-16", "fdatasync-64", "syncfs", "journal", "journal-writebehind"} {
			b.Run(fmt.Sprintf("files=%d/%s", n, how), func(b *testing.B) {
				dir := b.TempDir()
				files := make([]*os.File, n)
				for i := range files {
					f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint(i)), os.O_RDWR|os.O_CREATE, 0o600)
					if err != nil {
						b.Fatal(err)
					}
					defer f.Close()
					files[i] = f
				}
				buf := make([]byte, 1920)
				var pos int64
				var j journalSim
				if how == "journal" || how == "journal-writebehind" {
					j.open(b, dir, n, how == "journal-writebehind")
					defer j.close()
				}
				cpu0 := cpuTime()
				b.ResetTimer()
				for range b.N {
					if j.f != nil {
						if err := j.cycle(files, buf); err != nil {
							b.Fatal(err)
						}
						continue
					}
					for _, f := range files {
						if _, err := f.WriteAt(buf, pos); err != nil {
							b.Fatal(err)
						}
					}
					pos += int64(len(buf))
					var err error
					switch how {
					case "sequential-fsync":
						for _, f := range files {
							err = f.Sync()
						}
					case "fdatasync-16":
						err = syncConcurrently(files, 16)
					case "fdatasync-64":
						err = syncConcurrently(files, 64)
					case "syncfs":
						err = unix.Syncfs(int(files[0].Fd()))
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
			})
		}
	}
}

// cpuTime is the process's user + system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// journalSim is the broker-wide journal candidate of BenchmarkSyncCandidates:
// one cycle appends every file's new bytes (with a 24-byte record header) to
// the journal in one write and fdatasyncs it; the files themselves are
// written right away, or (writeBehind) once their buffer holds 64 KiB, and
// made durable only by a syncfs checkpoint per 64 MiB of journal, after
// which the journal starts over.
type journalSim struct {
	f           *os.File
	writeBehind bool
	jpos        int64
	pos         []int64  // per file: bytes written to it
	pending     [][]byte // per file (writeBehind): bytes not yet written
	rec         []byte
}

const (
	journalCheckpoint = 64 << 20
	writeBehindChunk  = 64 << 10
)

func (j *journalSim) open(b *testing.B, dir string, n int, writeBehind bool) {
	f, err := os.OpenFile(filepath.Join(dir, "journal"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	j.f, j.writeBehind, j.pos, j.pending = f, writeBehind, make([]int64, n), make([][]byte, n)
}

func (j *journalSim) close() { j.f.Close() }

func (j *journalSim) cycle(files []*os.File, data []byte) error {
	j.rec = j.rec[:0]
	var hdr [24]byte
	for i, f := range files {
		j.rec = append(j.rec, hdr[:]...) // partition id, offset, length, CRC in a real journal
		j.rec = append(j.rec, data...)
		if !j.writeBehind {
			if _, err := f.WriteAt(data, j.pos[i]); err != nil {
				return err
			}
			j.pos[i] += int64(len(data))
			continue
		}
		j.pending[i] = append(j.pending[i], data...)
		if len(j.pending[i]) >= writeBehindChunk {
			if _, err := f.WriteAt(j.pending[i], j.pos[i]); err != nil {
				return err
			}
			j.pos[i] += int64(len(j.pending[i]))
			j.pending[i] = j.pending[i][:0]
		}
	}
	if _, err := j.f.WriteAt(j.rec, j.jpos); err != nil {
		return err
	}
	j.jpos += int64(len(j.rec))
	if err := unix.Fdatasync(int(j.f.Fd())); err != nil {
		return err
	}
	if j.jpos < journalCheckpoint {
		return nil
	}
	for i, f := range files { // checkpoint: everything into the files, then one syncfs
		if len(j.pending[i]) > 0 {
			if _, err := f.WriteAt(j.pending[i], j.pos[i]); err != nil {
				return err
			}
			j.pos[i] += int64(len(j.pending[i]))
			j.pending[i] = j.pending[i][:0]
		}
	}
	if err := unix.Syncfs(int(j.f.Fd())); err != nil {
		return err
	}
	j.jpos = 0
	return nil
}

func syncConcurrently(files []*os.File, k int) error {
	var wg sync.WaitGroup
	ch := make(chan *os.File)
	errs := make(chan error, len(files))
	for range min(k, len(files)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range ch {
				if err := unix.Fdatasync(int(f.Fd())); err != nil {
					errs <- err
				}
			}
		}()
	}
	for _, f := range files {
		ch <- f
	}
	close(ch)
	wg.Wait()
	close(errs)
	return <-errs
}
