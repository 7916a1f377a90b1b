package store_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/broker/store/storetest"
)

// commitLogs lists the commit log files of a data root.
func commitLogs(t *testing.T, fsys store.FS, dir string) []string {
	t.Helper()
	ents, err := fsys.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name, "commit-") && strings.HasSuffix(e.Name, ".log") {
			out = append(out, e.Name)
		}
	}
	return out
}

// oneCycle queues msgs[i] on parts[i] while the commit loop is held in its
// first commit (of hold, alone), then lets it go: the next cycle takes them
// all together. It returns each message's result.
func oneCycle(t *testing.T, entered, release chan struct{}, hold *store.Partition, parts []*store.Partition, msgs [][]byte) []store.AppendResult {
	t.Helper()
	require.NoError(t, hold.Append([]byte("hold"), 0, func(store.AppendResult, error) {}))
	<-entered
	res := make([]store.AppendResult, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Add(1)
		require.NoError(t, p.Append(msgs[i], 0, func(r store.AppendResult, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("append to %d: %v", i, err)
			}
			res[i] = r
		}))
	}
	close(release)
	wg.Wait()
	return res
}

// A cycle of CommitLogMin partitions or more is made durable by the
// commit log alone: after a power loss that keeps nothing unsynced, the
// segments hold none of it, and the reopened store has every message from
// the log's replay, at its acknowledged offset.
func TestCommitLogAloneMakesAManyPartitionCycleDurable(t *testing.T) {
	mem := storetest.NewMemFS()
	opts := store.Options{FS: mem, CommitLogMin: 3, RetentionInterval: -1}
	entered, release := holdWriter(&opts)
	s := mustOpen(t, "/data", opts)
	t.Cleanup(func() { _ = s.Close() }) // after the power loss: it only stops the goroutines
	hold := mustPart(t, s, "h", 0)
	parts := []*store.Partition{mustPart(t, s, "t", 0), mustPart(t, s, "t", 1), mustPart(t, s, "t", 2)}
	msgs := [][]byte{[]byte("zero"), []byte("one"), []byte("two")}
	res := oneCycle(t, entered, release, hold, parts, msgs)
	require.Len(t, commitLogs(t, mem, "/data"), 1, "the cycle committed through a log file")
	st := s.CommitLogStats()
	require.Len(t, st, 1)
	require.True(t, st[0].On)
	require.Equal(t, int64(1), st[0].Commits, "one logged cycle (the held one had a partition alone)")
	require.Positive(t, st[0].Bytes)

	crashed := mem.Crash(nil)
	for i := range parts {
		require.Zero(t, durableValidEnd(t, crashed, fmt.Sprintf("/data/t-%d", i)),
			"partition %d: the cycle must not have synced the segment (else this test proves nothing)", i)
	}
	s2 := mustOpen(t, "/data", store.Options{FS: crashed})
	defer s2.Close()
	require.Empty(t, commitLogs(t, crashed, "/data"), "a replayed log is removed")
	for i, m := range msgs {
		got := readAll(t, mustPart(t, s2, "t", i))
		require.Len(t, got, 1, "partition %d", i)
		require.Equal(t, string(m), string(got[0].Data))
		require.Equal(t, res[i].Offset, got[0].Offset)
		require.Equal(t, res[i].MsgID, got[0].ID)
	}
}

// A truncation checkpoints the commit log first. Otherwise a record of the
// bytes it cut would survive, and after a power loss its replay would write
// them back over what was appended at the same offsets afterwards (here by
// a cycle of one partition, which fdatasyncs the segment and logs nothing).
func TestTruncateLeavesNoCommitLogRecordOfTheCutBytes(t *testing.T) {
	mem := storetest.NewMemFS()
	opts := store.Options{FS: mem, CommitLogMin: 2, RetentionInterval: -1}
	entered, release := holdWriter(&opts)
	s := mustOpen(t, "/data", opts)
	t.Cleanup(func() { _ = s.Close() }) // after the power loss: it only stops the goroutines
	hold := mustPart(t, s, "h", 0)
	p0, p1 := mustPart(t, s, "t", 0), mustPart(t, s, "t", 1)
	res := oneCycle(t, entered, release, hold, []*store.Partition{p0, p1}, [][]byte{[]byte("old-0"), []byte("x")})
	require.NotEmpty(t, commitLogs(t, mem, "/data"))

	require.NoError(t, p0.Truncate(ctxT(t), res[0].Offset))
	r, err := p0.AppendSync(ctxT(t), []byte("new-0"), 0)
	require.NoError(t, err)
	require.Equal(t, res[0].Offset, r.Offset, "the new message takes the cut one's offset")

	s2 := mustOpen(t, "/data", store.Options{FS: mem.Crash(nil)})
	defer s2.Close()
	got := readAll(t, mustPart(t, s2, "t", 0))
	require.Len(t, got, 1)
	require.Equal(t, "new-0", string(got[0].Data), "a stale commit log record was replayed over the new message")
}

// Close makes what only the log made durable durable in the segments (one
// checkpoint) and removes the log: after a clean shutdown and a power loss
// right after it, the partitions open on their clean markers with
// everything, and no log is left to replay.
func TestCloseRemovesTheCommitLogAfterSyncingTheSegments(t *testing.T) {
	mem := storetest.NewMemFS()
	opts := store.Options{FS: mem, CommitLogMin: 2, RetentionInterval: -1}
	entered, release := holdWriter(&opts)
	s := mustOpen(t, "/data", opts)
	t.Cleanup(func() { _ = s.Close() }) // after the power loss: it only stops the goroutines
	hold := mustPart(t, s, "h", 0)
	parts := []*store.Partition{mustPart(t, s, "t", 0), mustPart(t, s, "t", 1)}
	oneCycle(t, entered, release, hold, parts, [][]byte{[]byte("a"), []byte("b")})
	require.NotEmpty(t, commitLogs(t, mem, "/data"))
	require.NoError(t, s.Close())
	require.Empty(t, commitLogs(t, mem, "/data"))

	crashed := mem.Crash(nil)
	for i, want := range []string{"a", "b"} {
		require.Positive(t, durableValidEnd(t, crashed, fmt.Sprintf("/data/t-%d", i)), "partition %d not synced at close", i)
		_, err := crashed.ReadFile(fmt.Sprintf("/data/t-%d/CLEAN", i))
		require.NoError(t, err, "partition %d has no clean marker", i)
		s2 := mustOpen(t, "/data", store.Options{FS: crashed})
		got := readAll(t, mustPart(t, s2, "t", i))
		require.NoError(t, s2.Close())
		require.Len(t, got, 1)
		require.Equal(t, want, string(got[0].Data))
	}
}

// A file past CommitLogMaxBytes is checkpointed in the background: the
// segments are synced and the covered files removed, so the log does not
// grow without bound, and what was acknowledged survives a power loss.
func TestCommitLogCheckpointRemovesCoveredFiles(t *testing.T) {
	mem := storetest.NewMemFS()
	opts := store.Options{FS: mem, CommitLogMin: 2, CommitLogMaxBytes: 256, RetentionInterval: -1}
	s := mustOpen(t, "/data", opts)
	t.Cleanup(func() { _ = s.Close() }) // after the power loss: it only stops the goroutines
	parts := []*store.Partition{mustPart(t, s, "t", 0), mustPart(t, s, "t", 1), mustPart(t, s, "t", 2)}
	var mu sync.Mutex
	acked := map[int][]string{}
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 300; j++ {
				m := fmt.Sprintf("p%d-%03d", i, j)
				if _, err := p.AppendSync(ctxT(t), []byte(m), 0); err != nil {
					t.Errorf("append: %v", err)
					return
				}
				mu.Lock()
				acked[i] = append(acked[i], m)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Written: ~900 records of ~50 bytes, ~45 KB: without checkpoints
	// that is ~175 files of 256 bytes.
	eventually(t, 10*time.Second, "checkpoints to remove the covered log files", func() bool {
		return len(commitLogs(t, mem, "/data")) <= 2
	})
	require.Positive(t, s.CommitLogStats()[0].Checkpoints)
	crashed := mem.Crash(nil)
	s2 := mustOpen(t, "/data", store.Options{FS: crashed})
	defer s2.Close()
	for i := range parts {
		var got []string
		for _, r := range readAll(t, mustPart(t, s2, "t", i)) {
			got = append(got, string(r.Data))
		}
		require.Equal(t, acked[i], got, "partition %d", i)
	}
}

// NoCommitLog: cycles sync the segments, no log file is ever written.
func TestNoCommitLogSyncsTheSegments(t *testing.T) {
	mem := storetest.NewMemFS()
	opts := store.Options{FS: mem, CommitLogMin: 2, NoCommitLog: true, RetentionInterval: -1}
	entered, release := holdWriter(&opts)
	s := mustOpen(t, "/data", opts)
	t.Cleanup(func() { _ = s.Close() }) // after the power loss: it only stops the goroutines
	hold := mustPart(t, s, "h", 0)
	parts := []*store.Partition{mustPart(t, s, "t", 0), mustPart(t, s, "t", 1)}
	oneCycle(t, entered, release, hold, parts, [][]byte{[]byte("a"), []byte("b")})
	require.Empty(t, commitLogs(t, mem, "/data"))
	require.Equal(t, []store.CommitLogStat{{Dir: "/data"}}, s.CommitLogStats(), "off, and not because it failed")
	crashed := mem.Crash(nil)
	for i := range parts {
		require.Positive(t, durableValidEnd(t, crashed, fmt.Sprintf("/data/t-%d", i)), "partition %d", i)
	}
}
