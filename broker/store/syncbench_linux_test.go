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
// fdatasync 16 or 64 at a time, or with one syncfs.
//
//	go test -run '^$' -bench SyncCandidates -benchtime 20x ./broker/store/
func BenchmarkSyncCandidates(b *testing.B) {
	for _, n := range []int{1, 4, 16, 100, 1000} {
		for _, how := range []string{"sequential-fsync", "fdatasync-16", "fdatasync-64", "syncfs"} {
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
				b.ResetTimer()
				for range b.N {
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
			})
		}
	}
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
