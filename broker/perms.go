package broker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// checkDirPermissions refuses data directories that every user may write:
// anyone on the host could then replace, truncate or delete the broker's
// logs and journal. Directories that do not exist yet are created by the
// store with mode 0750.
func checkDirPermissions(o Options) error {
	dirs := append([]string{o.DataDir, o.TxLogDir}, o.Store.TopicDirs...)
	for _, d := range dirs {
		st, err := os.Stat(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("broker: data directory %s: %w", d, err)
		}
		if st.IsDir() && st.Mode().Perm()&0o002 != 0 {
			return fmt.Errorf("broker: data directory %s is writable by every user (mode %04o): anyone on this host could "+
				"change or delete the broker's data; run chmod o-w %s (the broker creates its directories 0750)", d, st.Mode().Perm(), d)
		}
	}
	return nil
}
