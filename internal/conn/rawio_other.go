//go:build !linux

package conn

import (
	"net"
	"syscall"
)

// rawConnOf returns nil: outside Linux the connection uses net.Conn's Read
// and Write (rawRead and rawWrite are never called).
func rawConnOf(net.Conn) syscall.RawConn { return nil }

func rawRead(uintptr, []byte) (int, syscall.Errno) { return 0, syscall.EINVAL }

func rawWrite(uintptr, []byte) (int, syscall.Errno) { return 0, syscall.EINVAL }
