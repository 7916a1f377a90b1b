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

// rawRead and rawWrite are read(2) and write(2) on a non-blocking socket
// without the runtime's syscall bookkeeping (syscall.RawSyscall): they never
// block, so the P need not be handed off, and they do not wake the
// runtime's sysmon thread, which otherwise polls every 20 µs for a while
// after each wake-up of an idle process — most of a client's CPU at a few
// thousand messages per second.
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}
