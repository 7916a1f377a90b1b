package txlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// ErrUnreplayable means a journal file is damaged in a way replay cannot
// get past safely: intact records follow the damage, but they cannot be
// reached reliably or they contradict the state without the damaged
// record. Open then refuses to start and leaves every file as it is (see
// doc.go, "Damage").
var ErrUnreplayable = errors.New("txlog: journal damaged in the middle; it cannot be replayed safely")

// damagedSuffix is appended to the name of a file that had a record
// skipped: rotation keeps such a file under that name instead of deleting
// it (it is no longer replayed).
const damagedSuffix = ".damaged"

// span is a byte range of a journal file.
type span struct{ start, end int }

// fileScan is what a journal file holds: the records to apply (in order,
// each with its offset), the damaged records skipped, and where an ignored
// tail begins (-1: none).
type fileScan struct {
	recs    []Record
	offsets []int
	skipped []span
	tail    int
	tailErr error
}

// scanFile splits a journal file into records, skipped damaged records and
// an ignored tail, or returns ErrUnreplayable (see doc.go for the rules).
func scanFile(b []byte) (fileScan, error) {
	fs := fileScan{tail: -1}
	pos := len(fileMagic)
	if len(b) < len(fileMagic) || string(b[:len(fileMagic)]) != fileMagic {
		switch {
		case len(b) > pos && cleanToEnd(b, pos): // a damaged header before intact records
			fs.skipped = append(fs.skipped, span{0, pos})
		case firstFrame(b, 0) >= 0:
			return fs, fmt.Errorf("%w: the file header is damaged and intact records follow at offset %d, but they cannot be reached safely",
				ErrUnreplayable, firstFrame(b, 0))
		default:
			fs.tail, fs.tailErr = 0, errors.New("no valid header (torn at creation)")
			return fs, nil
		}
	}
	for pos < len(b) {
		r, n, err := DecodeRecord(b[pos:])
		if err == nil {
			fs.recs, fs.offsets = append(fs.recs, r), append(fs.offsets, pos)
			pos += n
			continue
		}
		// Skip by the length field only when nothing intact starts inside
		// the damaged frame: a damaged length could otherwise swallow an
		// intact record that follows.
		if end, ok := delimited(b, pos); ok && end < len(b) && cleanToEnd(b, end) && firstFrame(b[:end], pos+1) < 0 {
			fs.skipped = append(fs.skipped, span{pos, end})
			pos = end
			continue
		}
		if r := firstFrame(b, pos+1); r >= 0 {
			return fs, fmt.Errorf("%w: the record at offset %d is damaged (%v) and intact records follow at offset %d, but they cannot be reached safely",
				ErrUnreplayable, pos, err, r)
		}
		fs.tail, fs.tailErr = pos, err
		break
	}
	return fs, nil
}

// delimited returns the end of the frame at pos by its length field when
// that end lies within b.
func delimited(b []byte, pos int) (int, bool) {
	if len(b)-pos < frameHeader {
		return 0, false
	}
	n := binary.BigEndian.Uint32(b[pos:])
	if n == 0 || uint64(n) > uint64(len(b)-pos-frameHeader) {
		return 0, false
	}
	return pos + frameHeader + int(n), true
}

// cleanToEnd reports whether the frames from pos are intact to the end of
// b, except that the last one may be torn or damaged (a tail), and at
// least one is intact.
func cleanToEnd(b []byte, pos int) bool {
	intact := 0
	for pos < len(b) {
		_, n, err := DecodeRecord(b[pos:])
		if err != nil {
			end, ok := delimited(b, pos)
			return intact > 0 && (errors.Is(err, ErrTorn) || ok && end == len(b))
		}
		intact++
		pos += n
	}
	return intact > 0
}

// firstFrame returns the first offset at or after from where an intact
// frame starts, or -1. Cheap checks of the length, kind, key length and
// body structure come before the checksum.
func firstFrame(b []byte, from int) int {
	for r := from; r+frameHeader+3 <= len(b); r++ {
		n := binary.BigEndian.Uint32(b[r:])
		if n < 3 || uint64(n) > uint64(len(b)-r-frameHeader) {
			continue
		}
		if k := Kind(b[r+frameHeader]); k < KindPrepare || k > KindForget {
			continue
		}
		if kl := binary.BigEndian.Uint16(b[r+frameHeader+1:]); uint32(kl)+3 > n {
			continue
		}
		// The body's structure (exact size, counts) rejects almost every
		// false candidate before the checksum over n bytes is computed.
		body := b[r+frameHeader : r+frameHeader+int(n)]
		if _, err := decodeBody(body); err != nil {
			continue
		}
		if crc32.Checksum(body, castagnoli) == binary.BigEndian.Uint32(b[r+4:]) {
			return r
		}
	}
	return -1
}

// replayFile applies one journal file to the state. A damaged record in the
// middle is skipped when the rules of doc.go allow it (the file is then
// marked damaged: rotation keeps it); a torn or damaged tail is ignored;
// anything else fails with ErrUnreplayable.
func (j *Journal) replayFile(seq uint64) error {
	path := filepath.Join(j.dir, fileName(seq))
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("txlog: read %s: %w", path, err)
	}
	fs, err := scanFile(b)
	if err != nil {
		return unreplayable(path, err)
	}
	for _, s := range fs.skipped {
		k, key := peekKindKey(b[s.start:s.end])
		j.log.Warn("txlog: skipped a damaged record in the middle of a journal file; the records after it are intact",
			"file", path, "offset", s.start, "size", s.end-s.start, "kind_if_intact", k, "key_if_intact", key)
	}
	next := 0 // index into fs.skipped: records after the first skip are checked
	for i := range fs.recs {
		for next < len(fs.skipped) && fs.skipped[next].start < fs.offsets[i] {
			next++
		}
		if next > 0 {
			if why := j.state.contradicts(&fs.recs[i]); why != "" {
				return unreplayable(path, fmt.Errorf("%w: the record at offset %d (%s %s) %s; the damaged record at offset %d may have held it",
					ErrUnreplayable, fs.offsets[i], fs.recs[i].Kind, fs.recs[i].Key, why, fs.skipped[next-1].start))
			}
		}
		j.state.Apply(&fs.recs[i])
	}
	if len(fs.skipped) > 0 {
		j.damaged[seq] = true
		j.skipped += len(fs.skipped)
	}
	if fs.tail >= 0 {
		j.log.Warn("txlog: journal file ends with a torn or damaged record; the rest is ignored",
			"file", path, "offset", fs.tail, "ignored_bytes", len(b)-fs.tail, "err", fs.tailErr)
	}
	return nil
}

// unreplayable adds the file and what the operator can do to err.
func unreplayable(path string, err error) error {
	return fmt.Errorf("%w (file %s). Nothing was changed on disk. Keep the file for analysis; then either restore the "+
		"transaction journal directory from a backup, or move this file out of the directory to start without "+
		"the transactions it records (prepared XA transactions and commits in progress in it are then lost)", err, path)
}

// peekKindKey reads the kind and key of a damaged frame as far as they look
// plausible, for the log only: they are not verified.
func peekKindKey(frame []byte) (string, string) {
	if len(frame) < frameHeader+3 {
		return "?", "?"
	}
	k := Kind(frame[frameHeader])
	kl := int(binary.BigEndian.Uint16(frame[frameHeader+1:]))
	key := "?"
	if frameHeader+3+kl <= len(frame) {
		key = fmt.Sprintf("%q", frame[frameHeader+3:frameHeader+3+kl])
	}
	return k.String(), key
}

// contradicts says why applying r cannot be right when an earlier record of
// the file was skipped, or "" when r is consistent with the state.
func (s *State) contradicts(r *Record) string {
	if r.Kind == KindCommit && !r.Inline {
		if t := s.Live[r.Key]; t == nil || t.State != Prepared && t.State != Committing {
			return "commits a transaction whose PREPARE is missing"
		}
	}
	return ""
}
