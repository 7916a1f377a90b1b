package store

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// HeaderSize is the size of the message header that precedes the put data.
const HeaderSize = 20

// ErrIncomplete is the stop reason of ScanValid when the data ends inside a
// message (fewer than HeaderSize bytes left, or the length runs past the end).
var ErrIncomplete = errors.New("store: incomplete message")

// Header is the decoded 20-byte message header (PROTOCOL.md §4).
type Header struct {
	Len      int32 // length of the put data (excludes the header)
	Checksum int32 // CRC-32 IEEE of the put data & 0x7FFFFFFF
	ID       int64 // message id
	Flag     int32 // put flag
}

// Checksum returns the MetaQ checksum of put data: CRC-32 (IEEE) & 0x7FFFFFFF.
func Checksum(data []byte) int32 {
	return int32(crc32.ChecksumIEEE(data) & 0x7FFFFFFF)
}

// ParseHeader decodes a header from the first HeaderSize bytes of b.
func ParseHeader(b []byte) Header {
	_ = b[HeaderSize-1]
	return Header{
		Len:      int32(binary.BigEndian.Uint32(b[0:4])),
		Checksum: int32(binary.BigEndian.Uint32(b[4:8])),
		ID:       int64(binary.BigEndian.Uint64(b[8:16])),
		Flag:     int32(binary.BigEndian.Uint32(b[16:20])),
	}
}

// PutHeader encodes h into the first HeaderSize bytes of b.
func PutHeader(b []byte, h Header) {
	_ = b[HeaderSize-1]
	binary.BigEndian.PutUint32(b[0:4], uint32(h.Len))
	binary.BigEndian.PutUint32(b[4:8], uint32(h.Checksum))
	binary.BigEndian.PutUint64(b[8:16], uint64(h.ID))
	binary.BigEndian.PutUint32(b[16:20], uint32(h.Flag))
}

// AppendMessage appends one encoded message (header + put data) to dst.
func AppendMessage(dst []byte, id int64, flag int32, data []byte) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	PutHeader(dst[n:], Header{Len: int32(len(data)), Checksum: Checksum(data), ID: id, Flag: flag})
	return append(dst, data...)
}

// ScanValid walks the message set in b and returns the length of its longest
// prefix made of complete messages with correct checksums, and how many
// messages that prefix holds. stop is nil when the prefix is all of b,
// ErrIncomplete when b ends inside a message, and an error wrapping
// ErrCorrupt when a message has a negative length, a bad checksum, or an
// all-zero header (a zero-filled region, see doc.go "Zero-filled regions").
func ScanValid(b []byte) (n int, count int, stop error) {
	for n < len(b) {
		total, err := checkMessage(b[n:])
		if err != nil {
			return n, count, err
		}
		n += int(total)
		count++
	}
	return n, count, nil
}

// checkMessage is the one message rule of the store: every reader
// (recovery, Verify, ScanValid, ValidPrefix) applies it. It checks the
// message at the start of b and returns its total size (header + data).
// stop is ErrIncomplete when b ends inside the message (total is then the
// size the header announces, or 0 when even the header is incomplete),
// errZeroHeader for an all-zero header, and errCorruptLen or errCorruptCRC
// for a damaged message.
func checkMessage(b []byte) (total int64, stop error) {
	if len(b) < HeaderSize {
		return 0, ErrIncomplete
	}
	l := int64(int32(binary.BigEndian.Uint32(b[0:4])))
	if l < 0 {
		return 0, errCorruptLen
	}
	total = HeaderSize + l
	if total > int64(len(b)) {
		return total, ErrIncomplete
	}
	if l == 0 && isZeroHeader(b) {
		return 0, errZeroHeader
	}
	if Checksum(b[HeaderSize:total]) != int32(binary.BigEndian.Uint32(b[4:8])) {
		return 0, errCorruptCRC
	}
	return total, nil
}

// isZeroHeader reports whether the header at the start of b is all zeros:
// length 0, checksum 0 (the CRC of empty data), id 0, flag 0. The store
// never writes one (message ids are positive), but a file system can leave
// zeros after the last written byte when the power fails.
func isZeroHeader(b []byte) bool {
	return binary.BigEndian.Uint64(b[0:8]) == 0 && binary.BigEndian.Uint64(b[8:16]) == 0 &&
		binary.BigEndian.Uint32(b[16:20]) == 0
}

// ValidPrefix is the check every message set passes before it is served:
// it returns the longest prefix of data made of whole messages with correct
// checksums. A torn (incomplete) last message is cut off; data that holds
// only part of its first message is returned unchanged (the client sees
// the message is larger than its maxSize and asks for more). A corrupt
// message or a zero-filled region cuts the data before it; when that is
// the first message the error (wrapping ErrCorrupt) is returned instead,
// and no data: corrupt data is never served.
func ValidPrefix(data []byte) ([]byte, error) {
	valid, _, stop := ScanValid(data)
	switch {
	case stop == nil:
		return data, nil
	case valid > 0:
		return data[:valid], nil
	case errors.Is(stop, ErrIncomplete):
		return data, nil
	}
	return nil, stop
}

var (
	errCorruptLen = wrapCorrupt("negative message length")
	errCorruptCRC = wrapCorrupt("checksum mismatch")
	errZeroHeader = wrapCorrupt("all-zero header: a zero-filled region, not a message")
)

type corruptReason string

func (c corruptReason) Error() string { return ErrCorrupt.Error() + ": " + string(c) }
func (c corruptReason) Unwrap() error { return ErrCorrupt }

func wrapCorrupt(reason string) error { return corruptReason(reason) }
