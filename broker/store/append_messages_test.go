package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/store"
)

// AppendMessages writes contiguously with one callback, like AppendBatch,
// and assigns ids; it does not write the BATCH guard (no all-or-nothing).
func TestAppendMessagesIsContiguousAndAssignsIDs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
		s := mustOpen(t, dir, store.Options{FS: fsys})
		defer s.Close()
		p := mustPart(t, s, "many", 0)
		msgs := []store.Message{{Data: []byte("a")}, {Data: []byte("bb")}, {Data: []byte("ccc")}}
		done := make(chan store.AppendResult, 1)
		require.NoError(t, p.AppendMessages(msgs, func(r store.AppendResult, err error) {
			require.NoError(t, err)
			done <- r
		}))
		r := <-done
		require.Equal(t, int64(0), r.Offset)
		require.Equal(t, 3, r.Count)
		require.Equal(t, msgs[0].ID, r.MsgID)
		require.Less(t, msgs[0].ID, msgs[1].ID)
		require.Less(t, msgs[1].ID, msgs[2].ID)
		require.Equal(t, int64(3*store.HeaderSize+6), p.End())
		got := readAll(t, p)
		require.Len(t, got, 3)
	})
}
