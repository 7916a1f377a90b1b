package secretfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metaq-go/metaq/internal/secretfile"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask-proof
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		scenario, content string
		mode              os.FileMode
		want, wantErr     string
	}{
		{"one trailing newline is trimmed", "s3cret\n", 0o600, "s3cret", ""},
		{"a CRLF is trimmed", "s3cret\r\n", 0o400, "s3cret", ""},
		{"only one newline is trimmed", "s3cret\n\n", 0o600, "s3cret\n", ""},
		{"no newline", "s3 cret", 0o600, "s3 cret", ""},
		{"group-readable is refused", "s3cret\n", 0o640, "", "chmod 600"},
		{"world-readable is refused", "s3cret\n", 0o604, "", "other users may read it"},
		{"empty is refused", "\n", 0o600, "", "is empty"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			p := write(strings.ReplaceAll(tc.scenario, " ", "_"), tc.content, tc.mode)
			got, err := secretfile.Read(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), p) {
					t.Fatalf("Read = %q, %v; want an error naming %s and containing %q", got, err, p, tc.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("error %q shows the secret", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Read = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := secretfile.Read(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing file: %v", err)
	}
}
