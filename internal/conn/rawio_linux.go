//go:build linux

package conn

import (
	"net"
	"syscall"
	"unsafe"
)

// rawConnOf returns nc's raw connection for rawRead and rawWrite, or nil
// when nc has none (e.g. a TLS connection).
func rawConnOf(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// rawMax bounds the bytes one raw call moves: copying more may take long
// enough that the runtime should be told (and hand the P to another thread).
const rawMax = 16 << 10

// rawRead and rawWrite are read(2) and write(2) on a non-blocking socket.
// Up to rawMax bytes they skip the runtime's syscall bookkeeping
// (syscall.RawSyscall): they never block, so the P need not be handed off,
// and they do not wake the runtime's sysmon thread, which otherwise polls
// every 20 µs for a while after each wake-up of an idle process — most of a
// client's CPU at a few thousand messages per second. Larger transfers
// (bulk traffic, where these costs are spread over many messages) go
// through syscall.Syscall as net.Conn's would.
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, e := rawCall(syscall.SYS_READ, fd, p[:min(len(p), rawMax)])
	if e == 0 && n == rawMax && len(p) > rawMax { // more may be waiting: read it the ordinary way
		m, e2 := call(syscall.SYS_READ, fd, p[n:])
		if e2 == 0 && m > 0 {
			n += m
		}
	}
	return n, e
}

func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	switch {
	case len(p) == 0:
		return 0, 0
	case len(p) > rawMax:
		return call(syscall.SYS_WRITE, fd, p)
	}
	return rawCall(syscall.SYS_WRITE, fd, p)
}

func rawCall(trap, fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

func call(trap, fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.Syscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}
