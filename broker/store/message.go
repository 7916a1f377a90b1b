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
// ErrCorrupt when a message has a negative length or a bad checksum.
func ScanValid(b []byte) (n int, count int, stop error) {
	for {
		rest := b[n:]
		if len(rest) == 0 {
			return n, count, nil
		}
		if len(rest) < HeaderSize {
			return n, count, ErrIncomplete
		}
		l := int32(binary.BigEndian.Uint32(rest[0:4]))
		if l < 0 {
			return n, count, errCorruptLen
		}
		if int64(l) > int64(len(rest)-HeaderSize) {
			return n, count, ErrIncomplete
		}
		sum := int32(binary.BigEndian.Uint32(rest[4:8]))
		if Checksum(rest[HeaderSize:HeaderSize+int(l)]) != sum {
			return n, count, errCorruptCRC
		}
		n += HeaderSize + int(l)
		count++
	}
}

var (
	errCorruptLen = wrapCorrupt("negative message length")
	errCorruptCRC = wrapCorrupt("checksum mismatch")
)

type corruptReason string

func (c corruptReason) Error() string { return ErrCorrupt.Error() + ": " + string(c) }
func (c corruptReason) Unwrap() error { return ErrCorrupt }

func wrapCorrupt(reason string) error { return corruptReason(reason) }
