package store

import (
	"io"
	"os"
)

// FS is the file-system seam the store uses for every file operation. OSFS is
// the real implementation; package storetest has a fault-injecting wrapper
// and a strict in-memory twin that can simulate a power loss.
//
// Names are slash-separated paths as produced by path/filepath.Join.
type FS interface {
	// OpenFile opens a file like os.OpenFile (flags O_RDONLY, O_RDWR,
	// O_CREATE, O_EXCL, O_TRUNC are used).
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Rename renames a file, replacing the target; durable after SyncDir.
	Rename(oldName, newName string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// ReadDir lists a directory, sorted by name.
	ReadDir(name string) ([]DirEntry, error)
	// MkdirAll creates a directory and its parents.
	MkdirAll(name string, perm os.FileMode) error
	// SyncDir makes the directory's entries (creations, renames, removals)
	// durable.
	SyncDir(name string) error
	// Lock takes an exclusive advisory lock on the named file, creating it,
	// without blocking; it fails with an error wrapping ErrLocked when
	// another holder has it. Close the returned io.Closer to unlock.
	Lock(name string) (io.Closer, error)
}

// File is an open file of an FS. Writes use explicit positions.
type File interface {
	io.ReaderAt
	io.WriterAt
	// Truncate changes the file size.
	Truncate(size int64) error
	// Sync makes the file's data durable (fsync/fdatasync).
	Sync() error
	// Size returns the current file size.
	Size() (int64, error)
	// Close closes the file.
	Close() error
	// Name returns the name the file was opened with.
	Name() string
}

// DirEntry is one entry of FS.ReadDir.
type DirEntry struct {
	Name  string
	IsDir bool
}

// OSFile is implemented by Files backed by an *os.File (the OSFS ones), so a
// network layer can use sendfile or the raw descriptor.
type OSFile interface {
	OSFile() *os.File
}
