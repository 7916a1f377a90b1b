// Package zkwire knows just enough of the ZooKeeper client wire protocol to
// observe a session from the side: it parses the connect handshake (to learn a
// session's id and password) and the request/reply headers (to correlate a
// request with its reply). It is shared by the session tracker in zkrecipes and
// by the fault proxy and session-expiry helper in zkrecipes/zktest.
//
// Frames on a ZooKeeper client connection are length-prefixed (int32, big
// endian). The first frame in each direction is the connect request/response;
// every later client frame starts with xid int32 + opcode int32, every later
// server frame with xid int32 + zxid int64 + err int32. Server xid -1 is a watch
// event and -2 a ping reply.
package zkwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Opcodes of the requests the tools here care about (ZooKeeper's OpCode).
const (
	OpCreate          int32 = 1
	OpDelete          int32 = 2
	OpExists          int32 = 3
	OpGetData         int32 = 4
	OpSetData         int32 = 5
	OpGetChildren     int32 = 8
	OpSync            int32 = 9
	OpPing            int32 = 11
	OpGetChildren2    int32 = 12
	OpCheck           int32 = 13
	OpMulti           int32 = 14
	OpCreate2         int32 = 15
	OpCreateContainer int32 = 19
	OpCreateTTL       int32 = 21
	OpCloseSession    int32 = -11
	OpSetAuth         int32 = 100
	OpSetWatches      int32 = 101
)

// Special server xids.
const (
	XidWatchEvent int32 = -1
	XidPing       int32 = -2
)

// MaxFrame bounds the frames this package will buffer (ZooKeeper's jute.maxbuffer default plus headers).
const MaxFrame = 16 << 20

// ErrShortFrame reports a frame too short for the header it must carry.
var ErrShortFrame = errors.New("zkwire: frame too short")

// ConnectResponse is the server's answer to a connect request.
type ConnectResponse struct {
	ProtocolVersion int32
	TimeoutMs       int32
	SessionID       int64 // 0 means the session asked for has expired
	Password        []byte
}

// ParseConnectResponse decodes the body (without the length prefix) of a connect response.
func ParseConnectResponse(body []byte) (ConnectResponse, error) {
	var r ConnectResponse
	if len(body) < 4+4+8+4 {
		return r, ErrShortFrame
	}
	r.ProtocolVersion = int32(binary.BigEndian.Uint32(body[0:]))
	r.TimeoutMs = int32(binary.BigEndian.Uint32(body[4:]))
	r.SessionID = int64(binary.BigEndian.Uint64(body[8:]))
	n := int32(binary.BigEndian.Uint32(body[16:]))
	if n < 0 {
		return r, nil
	}
	if int(n) > len(body)-20 {
		return r, fmt.Errorf("zkwire: password length %d exceeds frame: %w", n, ErrShortFrame)
	}
	r.Password = append([]byte(nil), body[20:20+n]...)
	return r, nil
}

// AppendConnectRequest appends a full connect-request frame (with length prefix)
// that resumes session id with password, asking for timeoutMs.
func AppendConnectRequest(dst []byte, sessionID int64, password []byte, timeoutMs int32) []byte {
	body := make([]byte, 0, 4+8+4+8+4+len(password)+1)
	body = binary.BigEndian.AppendUint32(body, 0) // protocol version
	body = binary.BigEndian.AppendUint64(body, 0) // last zxid seen
	body = binary.BigEndian.AppendUint32(body, uint32(timeoutMs))
	body = binary.BigEndian.AppendUint64(body, uint64(sessionID))
	body = binary.BigEndian.AppendUint32(body, uint32(len(password)))
	body = append(body, password...)
	body = append(body, 0) // readOnly = false
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}

// AppendRequestHeaderOnly appends a frame holding only a request header (e.g. closeSession).
func AppendRequestHeaderOnly(dst []byte, xid, opcode int32) []byte {
	dst = binary.BigEndian.AppendUint32(dst, 8)
	dst = binary.BigEndian.AppendUint32(dst, uint32(xid))
	return binary.BigEndian.AppendUint32(dst, uint32(opcode))
}

// RequestHeader reads xid and opcode from a client frame body.
func RequestHeader(body []byte) (xid, opcode int32, err error) {
	if len(body) < 8 {
		return 0, 0, ErrShortFrame
	}
	return int32(binary.BigEndian.Uint32(body)), int32(binary.BigEndian.Uint32(body[4:])), nil
}

// ReplyHeader reads xid, zxid and the error code from a server frame body.
func ReplyHeader(body []byte) (xid int32, zxid int64, code int32, err error) {
	if len(body) < 16 {
		return 0, 0, 0, ErrShortFrame
	}
	return int32(binary.BigEndian.Uint32(body)), int64(binary.BigEndian.Uint64(body[4:])),
		int32(binary.BigEndian.Uint32(body[12:])), nil
}

// ReadFrame reads one length-prefixed frame and returns the prefix and body together.
func ReadFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrame {
		return nil, fmt.Errorf("zkwire: frame of %d bytes exceeds %d", n, MaxFrame)
	}
	frame := make([]byte, 4+n)
	copy(frame, hdr[:])
	if _, err := io.ReadFull(r, frame[4:]); err != nil {
		return nil, err
	}
	return frame, nil
}

// FrameScanner splits a byte stream observed in pieces into frames. It is used
// by passive observers that must not delay the stream: Feed every chunk as it
// passes, and receive each complete frame body in the callback.
type FrameScanner struct {
	buf []byte
}

// Feed appends p and calls fn for every complete frame body now available.
// Frames larger than MaxFrame stop the scanner (it then ignores the stream).
func (s *FrameScanner) Feed(p []byte, fn func(body []byte)) {
	if s.buf == nil && len(p) == 0 {
		return
	}
	s.buf = append(s.buf, p...)
	for len(s.buf) >= 4 {
		n := binary.BigEndian.Uint32(s.buf)
		if n > MaxFrame {
			s.buf = s.buf[:0:0]
			return
		}
		if uint32(len(s.buf)-4) < n {
			break
		}
		fn(s.buf[4 : 4+n])
		s.buf = s.buf[4+n:]
	}
	if len(s.buf) == 0 {
		s.buf = nil
	} else {
		s.buf = append([]byte(nil), s.buf...)
	}
}
