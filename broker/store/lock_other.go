//go:build !unix

package store

import (
	"errors"
	"os"
)

func flock(*os.File) error { return errors.New("file locking not supported on this platform") }
