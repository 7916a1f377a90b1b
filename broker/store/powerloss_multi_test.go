package store_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/broker/store/storetest"
)

// TestPowerLossManyPartitions cuts the power of the strict in-memory FS at
// random points while appenders on several partitions commit together (the
// cross-partition group commit: through the commit log, with checkpoints
// of a small log in half the runs, or concurrent per-file syncs, by seed). After recovery every partition holds
// every message acknowledged on it, at its acknowledged offset, nothing that
// was not appended to it, and ends exactly at the last valid message of
// what survived.
func TestPowerLossManyPartitions(t *testing.T) {
	runs := 300
	if testing.Short() {
		runs = 60
	}
	replayed := 0
	for i := 0; i < runs; i++ {
		ok, logs := powerLossManyRun(t, uint64(i))
		if !ok {
			return
		}
		if logs {
			replayed++
		}
	}
	t.Logf("%d of %d power losses left a commit log to replay", replayed, runs)
	if replayed == 0 {
		t.Fatal("no run committed through the commit log: the test does not cover it")
	}
}

func powerLossManyRun(t *testing.T, seed uint64) (ok, logs bool) {
	t.Helper()
	const parts, writers = 6, 2
	rng := rand.New(rand.NewPCG(seed, 99))
	mem := storetest.NewMemFS()
	// Cycles of 2+ partitions commit through the commit log, or every
	// third seed without the log: with one file-system sync per cycle, or
	// concurrent per-file syncs.
	opts := store.Options{FS: mem, MaxSegmentSize: int64(300 + rng.IntN(2000)), IndexInterval: 64,
		RetentionInterval: -1, FilesystemSyncMin: -1, SyncConcurrency: 1 + int(seed%4), CommitLogMin: 2}
	if seed%3 == 0 {
		opts.NoCommitLog = true
		if seed%6 == 0 {
			opts.FilesystemSyncMin = 2
		}
	}
	if seed%2 == 1 {
		// Checkpoints of the commit log (and power losses inside them).
		opts.CommitLogMaxBytes = int64(200 + rng.IntN(4000))
	}
	s, err := store.Open("/data", opts)
	if err != nil {
		t.Fatal(err)
	}
	ps := make([]*store.Partition, parts)
	for i := range ps {
		ps[i] = mustPart(t, s, "t", i)
	}
	var tailRng *rand.Rand
	tail := storetest.TailTorn
	switch seed % 4 {
	case 1:
		tailRng = rand.New(rand.NewPCG(seed, 7))
	case 2:
		tailRng, tail = rand.New(rand.NewPCG(seed, 7)), storetest.TailZeros
	case 3:
		tailRng, tail = rand.New(rand.NewPCG(seed, 7)), storetest.TailGarbage
	}
	mem.CrashAfterTail(int64(50+rng.IntN(400)), tailRng, tail)

	var mu sync.Mutex
	acks := make([][]ack, parts)
	var wg sync.WaitGroup
	for pi, p := range ps {
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 5000; i++ {
					data := fmt.Sprintf("w%d-%d", w, i)
					r, err := p.AppendSync(ctxT(t), []byte(data), 0)
					if err != nil {
						return
					}
					mu.Lock()
					acks[pi] = append(acks[pi], ack{data, r.Offset, r.MsgID})
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	s.Close()
	crashed := mem.Crashed()
	if crashed == nil {
		t.Fatalf("seed %d: no power loss happened", seed)
	}
	// What survived is the segments after the commit log's replay.
	logs = len(commitLogs(t, crashed, "/data")) > 0
	replayed := crashed.Clone()
	if err := store.ReplayCommitLogs(replayed, "/data"); err != nil {
		t.Fatalf("seed %d: replay: %v", seed, err)
	}
	wantEnds := make([]int64, parts)
	for i := range wantEnds {
		wantEnds[i] = durableValidEnd(t, replayed, fmt.Sprintf("/data/t-%d", i))
	}
	s2, err := store.Open("/data", store.Options{FS: crashed, MaxSegmentSize: opts.MaxSegmentSize, RetentionInterval: -1})
	if err != nil {
		t.Fatalf("seed %d: reopen after power loss: %v", seed, err)
	}
	defer s2.Close()
	for pi := range ps {
		dir := fmt.Sprintf("/data/t-%d", pi)
		if wantEnds[pi] < 0 {
			if len(acks[pi]) > 0 {
				t.Fatalf("seed %d: partition %d lost with %d acknowledged messages", seed, pi, len(acks[pi]))
			}
			continue
		}
		p2 := mustPart(t, s2, "t", pi)
		if p2.End() != wantEnds[pi] {
			t.Errorf("seed %d: partition %d recovered end %d, want %d (last valid message)", seed, pi, p2.End(), wantEnds[pi])
		}
		byOffset := map[int64]record{}
		last := map[int]int{}
		for _, r := range readAll(t, p2) {
			byOffset[r.Offset] = r
			var w, i int
			if _, err := fmt.Sscanf(string(r.Data), "w%d-%d", &w, &i); err != nil {
				t.Fatalf("seed %d: partition %d: foreign message %q", seed, pi, r.Data)
			}
			if prev, ok := last[w]; ok && i <= prev {
				t.Fatalf("seed %d: partition %d: writer %d out of order", seed, pi, w)
			}
			last[w] = i
		}
		for _, a := range acks[pi] {
			r, ok := byOffset[a.offset]
			if !ok || string(r.Data) != a.data || r.ID != a.id {
				t.Errorf("seed %d: partition %d: acknowledged message %q at %d lost (found %q)", seed, pi, a.data, a.offset, r.Data)
				return false, logs
			}
		}
		assertNoTrailingBytes(t, crashed, dir, p2.End())
	}
	return !t.Failed(), logs
}
