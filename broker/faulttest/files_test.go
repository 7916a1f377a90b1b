package faulttest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// segment is one segment file of a partition.
type segment struct {
	base int64 // partition offset of its first byte (its name)
	path string
	size int64
}

// segments lists the .meta files of a partition directory by offset.
func segments(t *testing.T, dir string) []segment {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []segment
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".meta")
		if !ok || len(name) != 20 {
			continue
		}
		base, err := strconv.ParseInt(name, 10, 64)
		require.NoError(t, err, e.Name())
		fi, err := e.Info()
		require.NoError(t, err)
		out = append(out, segment{base: base, path: filepath.Join(dir, e.Name()), size: fi.Size()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].base < out[j].base })
	return out
}

// appendFile appends b to the file at path.
func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(b)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// flipBit inverts bit (0..7) of the byte at pos of the file at path, in
// place (a shared mapping of the file sees it at once).
func flipBit(t *testing.T, path string, pos int64, bit uint) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	var b [1]byte
	_, err = f.ReadAt(b[:], pos)
	require.NoError(t, err, "read %s at %d", path, pos)
	b[0] ^= 1 << bit
	_, err = f.WriteAt(b[:], pos)
	require.NoError(t, err)
}

// ackedIn returns the acknowledged messages of part with offsets in
// [from, to), sorted by offset.
func (l *ledger) ackedIn(part int32, from, to int64) []ack {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []ack
	for _, a := range l.acked {
		if a.part == part && a.offset >= from && a.offset < to {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].offset < out[j].offset })
	return out
}

// payloadAt returns the acknowledged payload at (part, offset).
func (l *ledger) payloadAt(part int32, offset int64) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, a := range l.acked {
		if a.part == part && a.offset == offset {
			return p
		}
	}
	return ""
}

func describeSegments(segs []segment) string {
	var b strings.Builder
	for _, s := range segs {
		fmt.Fprintf(&b, "%d(+%d) ", s.base, s.size)
	}
	return b.String()
}
