package storetest

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"testing"
)

func write(t *testing.T, m *MemFS, name, data string, sync bool) {
	t.Helper()
	f, err := m.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := f.Size()
	if _, err := f.WriteAt([]byte(data), n); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
}

func content(m *MemFS, name string) string {
	b, err := m.ReadFile(name)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

// TestMemFSPowerLoss pins down what survives Crash.
func TestMemFSPowerLoss(t *testing.T) {
	m := NewMemFS()
	m.MkdirAll("/d", 0o755)
	m.SyncDir("/")
	write(t, m, "/d/synced", "abc", true)
	write(t, m, "/d/unsynced-data", "xyz", false)
	m.SyncDir("/d")
	write(t, m, "/d/synced", "def", false)        // appended, not synced
	write(t, m, "/d/new-not-in-dir", "new", true) // file synced, directory not
	m.Rename("/d/unsynced-data", "/d/renamed")    // rename not synced
	m.MkdirAll("/e", 0o755)                       // directory creation not synced

	c := m.Crash(nil)
	for name, want := range map[string]string{
		"/d/synced":         "abc",
		"/d/unsynced-data":  "",
		"/d/renamed":        "<lookup /d/renamed: file does not exist>",
		"/d/new-not-in-dir": "<lookup /d/new-not-in-dir: file does not exist>",
		"/e":                "<lookup /e: file does not exist>",
	} {
		if got := content(c, name); got != want {
			t.Errorf("%s after crash: %q, want %q", name, got, want)
		}
	}
	if _, err := m.OpenFile("/d/synced", os.O_RDONLY, 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("old FS still works after the crash: %v", err)
	}
}

func TestMemFSTornAndBudget(t *testing.T) {
	m := NewMemFS()
	write(t, m, "/f", "0123", true)
	m.SyncDir("/")
	write(t, m, "/f", "456789", false)
	m.CrashAfter(0, nil)
	if _, err := m.OpenFile("/g", os.O_RDWR|os.O_CREATE, 0o644); !errors.Is(err, ErrPoweredOff) {
		t.Fatalf("budget 0: %v", err)
	}
	if got := content(m.Crashed(), "/f"); got != "0123" {
		t.Fatalf("strict crash kept %q", got)
	}
	if _, err := m.Crashed().OpenFile("/nope", os.O_RDONLY, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
