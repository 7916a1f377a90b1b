package store

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
)

// Sync implements File with fdatasync(2): the data and the metadata needed
// to read it back (the size) become durable; timestamps are left to the
// journal's own pace.
func (f osFile) Sync() error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
		}
		return nil
	}
}

// SyncFilesystem implements FilesystemSyncer with syncfs(2), which since
// Linux 5.8 also reports write-back errors of the file system. On an older
// kernel it syncs only this file (which makes the committer retry the
// others file by file), because syncfs could not tell of a lost write.
func (f osFile) SyncFilesystem() error {
	if !syncfsReportsErrors {
		if err := f.Sync(); err != nil {
			return err
		}
		return errSyncfsUnusable
	}
	for {
		err := unix.Syncfs(int(f.Fd()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "syncfs", Path: f.Name(), Err: err}
		}
		return nil
	}
}

var _ FilesystemSyncer = osFile{}

// syncfsUsable tells the commit log whether SyncFilesystem is a real
// syncfs (Linux >= 5.8).
func (f osFile) syncfsUsable() bool { return syncfsReportsErrors }

var errSyncfsUnusable = errors.New("store: syncfs does not report write-back errors before Linux 5.8")

// syncfsReportsErrors says whether the kernel is Linux 5.8 or newer.
var syncfsReportsErrors = func() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > 5 || major == 5 && minor >= 8
}()
