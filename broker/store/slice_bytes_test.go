package store_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/store"
)

// Slice.Bytes (the zero-copy view used by the broker's get) returns exactly
// what a copying read returns, across segment rolls, on both file systems,
// and stays valid until Release even if the store closes meanwhile.
func TestSliceBytesMatchesCopyingRead(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
		s := mustOpen(t, dir, store.Options{FS: fsys, MaxSegmentSize: 4 << 10})
		p := mustPart(t, s, "zc", 0)
		for i := 0; i < 200; i++ {
			_, err := p.AppendSync(ctxT(t), payload(i), 0)
			require.NoError(t, err)
		}
		var off int64
		var held []store.Slice
		for off < p.End() {
			sl, err := p.Read(off, 1500)
			require.NoError(t, err)
			view, err := sl.Bytes()
			require.NoError(t, err)
			cp, err := sl.ReadAll(nil)
			require.NoError(t, err)
			require.True(t, bytes.Equal(view, cp), "offset %d", off)
			n, _, _ := store.ScanValid(view)
			require.Positive(t, n)
			off += int64(n)
			held = append(held, sl)
		}
		require.NoError(t, s.Close())
		// Views stay readable until released (the segments are refcounted).
		for _, sl := range held {
			view, err := sl.Bytes()
			require.NoError(t, err)
			require.Len(t, view, sl.Size)
			sl.Release()
		}
	})
}
