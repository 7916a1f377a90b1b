package broker_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
)

func TestRefusesWorldWritableDataDir(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o777))
	_, err := brokertest.New(t, brokertest.Options{DataDir: dir})
	require.ErrorContains(t, err, "writable by every user")
	require.ErrorContains(t, err, "chmod o-w "+dir)

	txDir := filepath.Join(t.TempDir(), "tx")
	require.NoError(t, os.Mkdir(txDir, 0o750))
	require.NoError(t, os.Chmod(txDir, 0o773))
	_, err = brokertest.New(t, brokertest.Options{Modify: func(o *broker.Options) { o.TxLogDir = txDir }})
	require.ErrorContains(t, err, "chmod o-w "+txDir)

	require.NoError(t, os.Chmod(dir, 0o750))
	b, err := brokertest.New(t, brokertest.Options{DataDir: dir})
	require.NoError(t, err)
	require.NoError(t, b.Shutdown(t.Context()))
}

// Data, journal and epoch files are 0640 and directories 0750: nothing
// under the data directory is readable by other users.
func TestDataFilesNotWorldReadable(t *testing.T) {
	dir := t.TempDir()
	b := brokertest.Start(t, brokertest.Options{DataDir: dir, Partitions: 1})
	c := brokertest.Dial(t, b.Addr())
	tlsPutGet(t, c, "perms", 10, "hello")
	x := "XID:1:0a0b:01:q1" // a prepared XA transaction writes the journal
	requireOK(t, txCall(t, c, txLine(x, "BEGIN", 20), 20))
	requireOK(t, txCall(t, c, txPutLine("perms", 0, "in tx", x, 21), 21))
	c.Send(t, txLine(x, "END", 22)) // END has no reply
	requireOK(t, txCall(t, c, txLine(x, "PREPARE", 23), 23))
	require.NoError(t, b.Shutdown(t.Context()))
	seen := 0
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		if p == dir {
			return nil
		}
		st, err := d.Info()
		require.NoError(t, err)
		require.Zero(t, st.Mode().Perm()&0o007, "%s has mode %04o: others may access it", p, st.Mode().Perm())
		seen++
		return nil
	}))
	require.Greater(t, seen, 3)
}
