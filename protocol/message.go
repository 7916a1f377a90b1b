package protocol

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// MessageHeaderSize is the size of the header before each message's put data
// in a message set (on disk and in a value reply).
const MessageHeaderSize = 20

// FlagAttribute is flag bit 0: the put data starts with an int32 attribute
// length and the attribute's UTF-8 bytes.
const FlagAttribute int32 = 1

// Checksum returns MetaQ's checksum of put data: CRC-32 (IEEE) masked with
// 0x7FFFFFFF.
func Checksum(data []byte) int32 {
	return int32(crc32.ChecksumIEEE(data) & 0x7FFFFFFF)
}

// Message is one message of a message set.
type Message struct {
	// Offset is the position of the message's first header byte relative to
	// the start of the message set.
	Offset   int64
	ID       int64
	Flag     int32
	Checksum int32 // as stored in the header
	// Data is the put data (attribute header included when Flag has
	// FlagAttribute); it aliases the message set.
	Data []byte
}

// Size is the message's size in the set, header included.
func (m *Message) Size() int { return MessageHeaderSize + len(m.Data) }

// Attribute splits Data into attribute and payload; see ParsePutData.
func (m *Message) Attribute() (attribute, payload []byte, err error) {
	return ParsePutData(m.Flag, m.Data)
}

// AppendMessage appends one message (header + put data) computing the
// checksum of data.
func AppendMessage(dst []byte, id int64, flag int32, data []byte) []byte {
	return AppendMessageWithChecksum(dst, Checksum(data), id, flag, data)
}

// AppendMessageWithChecksum appends one message with a checksum the caller
// already has (e.g. a broker that verified the put's checksum token).
func AppendMessageWithChecksum(dst []byte, checksum int32, id int64, flag int32, data []byte) []byte {
	var h [MessageHeaderSize]byte
	PutMessageHeader(h[:], len(data), checksum, id, flag)
	dst = append(dst, h[:]...)
	return append(dst, data...)
}

// PutMessageHeader writes a 20-byte message header into h.
func PutMessageHeader(h []byte, dataLen int, checksum int32, id int64, flag int32) {
	_ = h[MessageHeaderSize-1]
	binary.BigEndian.PutUint32(h[0:], uint32(dataLen))
	binary.BigEndian.PutUint32(h[4:], uint32(checksum))
	binary.BigEndian.PutUint64(h[8:], uint64(id))
	binary.BigEndian.PutUint32(h[16:], uint32(flag))
}

// AppendPutData appends put data: the payload alone, or, when flag has
// FlagAttribute, int32 len(attribute) + attribute + payload.
func AppendPutData(dst []byte, flag int32, attribute string, payload []byte) []byte {
	if flag&FlagAttribute != 0 {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(attribute)))
		dst = append(dst, attribute...)
	}
	return append(dst, payload...)
}

// ParsePutData splits put data into attribute (nil when flag lacks
// FlagAttribute) and payload. Both alias data.
func ParsePutData(flag int32, data []byte) (attribute, payload []byte, err error) {
	if flag&FlagAttribute == 0 {
		return nil, data, nil
	}
	if len(data) < 4 {
		return nil, nil, fmt.Errorf("%w: %d bytes, too short for an attribute length", ErrBadPutData, len(data))
	}
	n := binary.BigEndian.Uint32(data)
	if uint64(n) > uint64(len(data)-4) {
		return nil, nil, fmt.Errorf("%w: attribute length %d exceeds the %d bytes left", ErrBadPutData, int32(n), len(data)-4)
	}
	return data[4 : 4+n : 4+n], data[4+n:], nil
}

// ChecksumError reports a message whose stored checksum does not match its
// data. errors.Is(err, ErrChecksum) is true.
type ChecksumError struct {
	Offset int64 // of the message in the set
	Stored int32
	Actual int32
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("protocol: message at offset %d: checksum mismatch: stored %d, computed %d",
		e.Offset, e.Stored, e.Actual)
}

// Is reports ErrChecksum.
func (e *ChecksumError) Is(target error) bool { return target == ErrChecksum }

// MessageIterator walks a message set. It stops at the first incomplete
// message (fewer than 20 bytes left, or data past the end) without error, or
// at a corrupt one with Err set. Consumed is the byte count of the complete,
// valid messages returned so far: a consumer's next offset is the request
// offset + Consumed.
//
//	it := protocol.NewMessageIterator(set)
//	for it.Next() {
//		m := it.Message()
//		...
//	}
//	if err := it.Err(); err != nil { ... }
//	next := reqOffset + int64(it.Consumed())
type MessageIterator struct {
	set    []byte
	pos    int
	msg    Message
	err    error
	verify bool
}

// NewMessageIterator returns an iterator over set that verifies checksums.
func NewMessageIterator(set []byte) MessageIterator {
	return MessageIterator{set: set, verify: true}
}

// SkipChecksum disables checksum verification (for a reader that trusts
// the data, e.g. a broker re-reading its own verified log).
func (it *MessageIterator) SkipChecksum() { it.verify = false }

// Next advances to the next complete message and reports whether there is
// one.
func (it *MessageIterator) Next() bool {
	if it.err != nil {
		return false
	}
	rest := it.set[it.pos:]
	if len(rest) < MessageHeaderSize {
		return false
	}
	n := int32(binary.BigEndian.Uint32(rest))
	if n < 0 {
		it.err = fmt.Errorf("%w: message at offset %d has negative length %d", ErrCorrupt, it.pos, n)
		return false
	}
	if int64(n) > int64(len(rest)-MessageHeaderSize) {
		return false
	}
	end := MessageHeaderSize + int(n)
	it.msg = Message{
		Offset:   int64(it.pos),
		Checksum: int32(binary.BigEndian.Uint32(rest[4:])),
		ID:       int64(binary.BigEndian.Uint64(rest[8:])),
		Flag:     int32(binary.BigEndian.Uint32(rest[16:])),
		Data:     rest[MessageHeaderSize:end:end],
	}
	if it.verify {
		if sum := Checksum(it.msg.Data); sum != it.msg.Checksum {
			it.err = &ChecksumError{Offset: int64(it.pos), Stored: it.msg.Checksum, Actual: sum}
			return false
		}
	}
	it.pos += end
	return true
}

// Message returns the current message; its Data aliases the set.
func (it *MessageIterator) Message() Message { return it.msg }

// Consumed returns the bytes of complete messages returned by Next so far.
func (it *MessageIterator) Consumed() int { return it.pos }

// Err returns a *ChecksumError (errors.Is ErrChecksum) or an ErrCorrupt
// error when iteration stopped at a corrupt message, else nil.
func (it *MessageIterator) Err() error { return it.err }

// Incomplete reports whether bytes remain after the last complete message
// and iteration did not stop on an error (the set ends mid-message).
func (it *MessageIterator) Incomplete() bool { return it.err == nil && it.pos < len(it.set) }
