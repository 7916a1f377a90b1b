// Package secretfile reads a secret (a password, a token) from a file that
// only its owner can read.
package secretfile

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// Read returns the content of file without one trailing newline ("\n" or
// "\r\n"). It refuses a file that its group or other users can read or write
// (mode & 0o077 != 0), and an empty secret; errors name the file and say how
// to fix it, never the content.
func Read(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("secret file %s is not a regular file", file)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("secret file %s has mode %#o: other users may read it; make it private with `chmod 600 %s`", file, perm, file)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	s := string(b)
	if t, ok := strings.CutSuffix(s, "\r\n"); ok {
		s = t
	} else {
		s = strings.TrimSuffix(s, "\n")
	}
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", file)
	}
	return s, nil
}
