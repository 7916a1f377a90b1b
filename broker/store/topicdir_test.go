package store_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/store"
)

// A topic with its own directory (MetaQ's per-topic dataPath) keeps its
// partitions there and finds them again after a restart; a partition
// directory of that topic left in the main directory is not opened.
func TestTopicDirHoldsItsPartitionsAcrossRestart(t *testing.T) {
	main, away := t.TempDir(), t.TempDir()
	opts := store.Options{TopicDirs: []string{away}, Topic: func(topic string) store.TopicOptions {
		if topic == "away" {
			return store.TopicOptions{Dir: away}
		}
		return store.TopicOptions{}
	}}
	s := mustOpen(t, main, opts)
	for i := range 3 {
		_, err := mustPart(t, s, "away", 1).AppendSync(ctxT(t), payload(i), 0)
		require.NoError(t, err)
		_, err = mustPart(t, s, "home", 0).AppendSync(ctxT(t), payload(i), 0)
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
	require.DirExists(t, filepath.Join(away, "away-1"))
	require.NoDirExists(t, filepath.Join(main, "away-1"))
	require.DirExists(t, filepath.Join(main, "home-0"))
	require.NoError(t, os.Mkdir(filepath.Join(main, "away-0"), 0o750)) // stray: not the topic's directory

	s = mustOpen(t, main, opts)
	defer s.Close()
	p, err := s.Partition("away", 1, false)
	require.NoError(t, err, "recovered from the topic's directory")
	require.Len(t, readAll(t, p), 3)
	_, err = s.Partition("away", 0, false)
	require.ErrorIs(t, err, store.ErrNoPartition, "a stray directory in the wrong root is ignored")
	require.Len(t, readAll(t, mustPart(t, s, "home", 0)), 3)

	// A Dir that is not among TopicDirs is refused with a clear error.
	bad := mustOpen(t, t.TempDir(), store.Options{Topic: func(string) store.TopicOptions { return store.TopicOptions{Dir: away} }})
	defer bad.Close()
	_, err = bad.Partition("x", 0, true)
	require.ErrorContains(t, err, "TopicDirs")
}
