package replica

import (
	"os"
	"path/filepath"
	"testing"
)

// The epoch history is private to the broker's user and group: file 0640,
// directory 0750 (before the umask).
func TestEpochHistoryPermissions(t *testing.T) {
	dir := t.TempDir()
	h, err := OpenEpochHistory(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Append(EpochStart{Epoch: 1, Start: map[Partition]int64{}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "replication"), filepath.Join(dir, "replication", "epochs")} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o007 != 0 {
			t.Errorf("%s has mode %04o: others may access it", p, st.Mode().Perm())
		}
	}
}
