package txlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Kind is the type of a journal record.
type Kind uint8

// Record kinds (the type byte of a frame; see doc.go).
const (
	KindPrepare  Kind = 1 // an XA transaction is prepared: its messages
	KindCommit   Kind = 2 // a commit is decided: partition start offsets (+ messages when not prepared)
	KindDone     Kind = 3 // every partition append of a commit is durable
	KindRollback Kind = 4 // a journaled transaction is rolled back
	KindForget   Kind = 5 // a heuristically completed transaction is forgotten
)

func (k Kind) String() string {
	switch k {
	case KindPrepare:
		return "PREPARE"
	case KindCommit:
		return "COMMIT"
	case KindDone:
		return "DONE"
	case KindRollback:
		return "ROLLBACK"
	case KindForget:
		return "FORGET"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Record flags.
const (
	flagHeuristic = 1 << 0 // an operator decided the outcome
	flagInline    = 1 << 1 // a COMMIT carries its messages
)

// Message is one message of a transaction, with its pre-assigned id.
type Message struct {
	Topic     string
	Partition int32
	ID        int64
	Flag      int32
	Data      []byte
}

// PartStart is a partition a commit appends to and the partition's visible
// end before the commit started: the batch lands at or after Offset.
type PartStart struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Record is one journal entry.
type Record struct {
	Kind      Kind
	Key       string // transaction key (wire form)
	Heuristic bool   // COMMIT, DONE, ROLLBACK: decided by an operator
	// Inline (COMMIT): Msgs holds the messages; otherwise they are those of
	// the PREPARE record of the same key.
	Inline bool
	Msgs   []Message   // PREPARE; COMMIT when Inline
	Parts  []PartStart // COMMIT
	// Owner (PREPARE, COMMIT, DONE, ROLLBACK) is the principal that began
	// the transaction; "" = none (security off, or a record written
	// before owners were journaled). Encoded as an optional trailer.
	Owner string
}

// Framing constants.
const (
	frameHeader = 8 // u32 length + u32 CRC-32C
	// MaxRecordSize bounds the length field; a larger one is corruption.
	MaxRecordSize = 1 << 30
	maxKeyLen     = 1<<16 - 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	// ErrTorn means the input ends inside a frame (a torn tail).
	ErrTorn = errors.New("txlog: incomplete record")
	// ErrCorrupt means a frame's checksum or contents are invalid.
	ErrCorrupt = errors.New("txlog: corrupt record")
	// ErrClosed is returned by appends after Close.
	ErrClosed = errors.New("txlog: journal closed")
	// ErrFailed is returned by appends after a write or fsync error (sticky).
	ErrFailed = errors.New("txlog: journal failed after an I/O error")
)

// AppendRecord appends the framed encoding of r to dst.
func AppendRecord(dst []byte, r *Record) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0, byte(r.Kind))
	dst = appendStr16(dst, r.Key)
	var flags byte
	if r.Heuristic {
		flags |= flagHeuristic
	}
	if r.Inline {
		flags |= flagInline
	}
	switch r.Kind {
	case KindPrepare:
		dst = appendMsgs(dst, r.Msgs)
	case KindCommit:
		dst = append(dst, flags)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(r.Parts)))
		for _, p := range r.Parts {
			dst = appendStr16(dst, p.Topic)
			dst = binary.BigEndian.AppendUint32(dst, uint32(p.Partition))
			dst = binary.BigEndian.AppendUint64(dst, uint64(p.Offset))
		}
		if r.Inline {
			dst = appendMsgs(dst, r.Msgs)
		}
	case KindDone, KindRollback:
		dst = append(dst, flags)
	}
	if r.Owner != "" && r.Kind != KindForget {
		dst = appendStr16(dst, r.Owner)
	}
	body := dst[start+frameHeader:]
	binary.BigEndian.PutUint32(dst[start:], uint32(len(body)))
	binary.BigEndian.PutUint32(dst[start+4:], crc32.Checksum(body, castagnoli))
	return dst
}

func appendStr16(dst []byte, s string) []byte {
	if len(s) > maxKeyLen {
		s = s[:maxKeyLen] // keys and topics are far shorter; never reached
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendMsgs(dst []byte, msgs []Message) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(msgs)))
	for i := range msgs {
		m := &msgs[i]
		dst = appendStr16(dst, m.Topic)
		dst = binary.BigEndian.AppendUint32(dst, uint32(m.Partition))
		dst = binary.BigEndian.AppendUint64(dst, uint64(m.ID))
		dst = binary.BigEndian.AppendUint32(dst, uint32(m.Flag))
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(m.Data)))
		dst = append(dst, m.Data...)
	}
	return dst
}

// DecodeRecord decodes the frame at the start of b. It returns the record,
// the frame's size, and ErrTorn when b ends inside the frame or ErrCorrupt
// when the frame is invalid. Data slices of the record alias b.
func DecodeRecord(b []byte) (Record, int, error) {
	if len(b) < frameHeader {
		return Record{}, 0, ErrTorn
	}
	n := binary.BigEndian.Uint32(b)
	if n == 0 || n > MaxRecordSize {
		return Record{}, 0, fmt.Errorf("%w: length %d", ErrCorrupt, n)
	}
	if uint64(len(b)-frameHeader) < uint64(n) {
		return Record{}, 0, ErrTorn
	}
	body := b[frameHeader : frameHeader+int(n)]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return Record{}, 0, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	r, err := decodeBody(body)
	if err != nil {
		return Record{}, 0, err
	}
	return r, frameHeader + int(n), nil
}

// reader walks a record body; the first short read sets bad.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || n < 0 || n > len(r.b) {
		r.bad = true
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8() byte {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() int {
	if b := r.take(2); b != nil {
		return int(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (r *reader) str16() string { return string(r.take(r.u16())) }

// count reads a u32 element count, refusing counts that cannot fit in the
// remaining bytes (each element takes at least min bytes).
func (r *reader) count(min int) int {
	n := r.u32()
	if uint64(n)*uint64(min) > uint64(len(r.b)) {
		r.bad = true
		return 0
	}
	return int(n)
}

func (r *reader) msgs() []Message {
	n := r.count(2 + 4 + 8 + 4 + 4)
	out := make([]Message, 0, n)
	for i := 0; i < n && !r.bad; i++ {
		m := Message{Topic: r.str16(), Partition: int32(r.u32()), ID: int64(r.u64()), Flag: int32(r.u32())}
		m.Data = r.take(int(r.u32()))
		out = append(out, m)
	}
	return out
}

func decodeBody(body []byte) (Record, error) {
	r := &reader{b: body}
	rec := Record{Kind: Kind(r.u8())}
	rec.Key = r.str16()
	switch rec.Kind {
	case KindPrepare:
		rec.Msgs = r.msgs()
	case KindCommit:
		flags := r.u8()
		r.bad = r.bad || flags&^(flagHeuristic|flagInline) != 0
		rec.Heuristic, rec.Inline = flags&flagHeuristic != 0, flags&flagInline != 0
		n := r.count(2 + 4 + 8)
		rec.Parts = make([]PartStart, 0, n)
		for i := 0; i < n && !r.bad; i++ {
			rec.Parts = append(rec.Parts, PartStart{Topic: r.str16(), Partition: int32(r.u32()), Offset: int64(r.u64())})
		}
		if rec.Inline {
			rec.Msgs = r.msgs()
		}
	case KindDone, KindRollback:
		flags := r.u8()
		r.bad = r.bad || flags&^flagHeuristic != 0
		rec.Heuristic = flags&flagHeuristic != 0
	case KindForget:
	default:
		return Record{}, fmt.Errorf("%w: unknown record type %d", ErrCorrupt, rec.Kind)
	}
	if len(r.b) > 0 && rec.Kind != KindForget && !r.bad {
		// The owner trailer; absent from records of older versions.
		if rec.Owner = r.str16(); rec.Owner == "" {
			r.bad = true // an empty owner is written as no trailer
		}
	}
	if r.bad {
		return Record{}, fmt.Errorf("%w: %s record shorter than its contents or with unknown flags", ErrCorrupt, rec.Kind)
	}
	if len(r.b) != 0 {
		return Record{}, fmt.Errorf("%w: %d bytes after the %s record", ErrCorrupt, len(r.b), rec.Kind)
	}
	return rec, nil
}
