package faulttest

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// commitLogBytes is the size of the commit log files in dir.
func commitLogBytes(t *testing.T, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var n int64
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "commit-") && strings.HasSuffix(e.Name(), ".log") {
			fi, err := e.Info()
			require.NoError(t, err)
			n += fi.Size()
		}
	}
	return n
}

// loggedRange is the place of a commit log record's bytes.
type loggedRange struct {
	dir       string // partition directory name
	base, pos int64  // segment start, position in it
	n         int64
}

// loggedRanges reads the commit logs of dir by the layout in
// broker/store/doc.go ("Commit log") and returns where their records'
// bytes belong.
func loggedRanges(t *testing.T, dir string) []loggedRange {
	t.Helper()
	var out []loggedRange
	logs, err := filepath.Glob(filepath.Join(dir, "commit-*.log"))
	require.NoError(t, err)
	for _, name := range logs {
		b, err := os.ReadFile(name)
		require.NoError(t, err)
		for len(b) >= 12 && binary.BigEndian.Uint32(b) == 0x4d514352 {
			n := int(binary.BigEndian.Uint32(b[4:]))
			if n > len(b)-12 || crc32.ChecksumIEEE(b[12:12+n]) != binary.BigEndian.Uint32(b[8:]) {
				break // torn tail
			}
			p := b[12 : 12+n]
			d := int(binary.BigEndian.Uint16(p))
			out = append(out, loggedRange{dir: string(p[2 : 2+d]), base: int64(binary.BigEndian.Uint64(p[2+d:])),
				pos: int64(binary.BigEndian.Uint64(p[2+d+8:])), n: int64(n - 2 - d - 16)})
			b = b[12+n:]
		}
	}
	return out
}

// zeroRange overwrites [pos, pos+n) of the file at path with zeros, within
// its size.
func zeroRange(t *testing.T, path string, pos, n int64) bool {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if os.IsNotExist(err) {
		return false // rolled away and removed
	}
	require.NoError(t, err)
	defer f.Close()
	fi, err := f.Stat()
	require.NoError(t, err)
	n = min(n, fi.Size()-pos)
	if n <= 0 {
		return false
	}
	_, err = f.WriteAt(make([]byte, n), pos)
	require.NoError(t, err)
	return true
}

// TestBinaryKill9ThenZeroedLoggedBytesTheCommitLogRestores: kill -9 while
// eight producers pipeline puts over the four partitions, so commit cycles
// of four partitions go through the commit log. Then every byte of the
// segments that a log record covers is zeroed (what a power loss can take
// from pages that only the log made durable, as delayed allocation leaves
// them). The restarted broker replays the log and serves every
// acknowledged put at its offset; the replayed log files are gone.
func TestBinaryKill9ThenZeroedLoggedBytesTheCommitLogRestores(t *testing.T) {
	t.Parallel()
	b := startBroker(t, config{maxSegmentSize: 1 << 20})
	l := newLedger()
	load(t, b.addr, "cl", 8, allParts, l, 2000, func() {
		require.Eventually(t, func() bool { return commitLogBytes(t, b.cfg.dataDir) > 0 }, 60*time.Second, time.Millisecond,
			"no commit cycle of four partitions went through the commit log")
		b.kill9()
	})

	zeroed := 0
	for _, r := range loggedRanges(t, b.cfg.dataDir) {
		if zeroRange(t, filepath.Join(b.cfg.dataDir, r.dir, fmt.Sprintf("%020d.meta", r.base)), r.pos, r.n) {
			zeroed++
		}
	}
	require.Positive(t, zeroed, "no segment bytes were covered by the log")
	t.Logf("zeroed the bytes of %d commit log records in the segments", zeroed)

	b = b.restart()
	l.audit(t, readAll(t, b.addr, false), auditOpts{})
	require.Zero(t, commitLogBytes(t, b.cfg.dataDir), "the replayed log is removed")
	b.requireAlive("restart after the commit log's replay")
}
