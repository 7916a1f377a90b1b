package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// The BATCH file makes multi-message batches (transaction commits) atomic
// across crashes. Recovery truncates at message granularity, so a batch
// that was only partly written when the power went (or the process was
// killed inside a large write) would otherwise come back in part. Before a
// buffer holding batches is written, the writer records, durably, the
// range [lo, hi) of the active segment that holds batches not yet fsynced.
// If recovery then finds the segment's valid data ending strictly inside
// that range, it truncates back to lo. Once an fsync covers the range the
// record is stale and harmless (the valid data reaches hi).
//
// Layout (32 bytes, big-endian): "MQBG" | segment start i64 | lo i64 | hi i64 | CRC-32 IEEE of the preceding 28 bytes u32.
const (
	batchGuardMagic = "MQBG"
	batchGuardSize  = 32
)

type batchGuard struct {
	base, lo, hi int64
}

func encodeGuard(g batchGuard) []byte {
	b := make([]byte, 0, batchGuardSize)
	b = append(b, batchGuardMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(g.base))
	b = binary.BigEndian.AppendUint64(b, uint64(g.lo))
	b = binary.BigEndian.AppendUint64(b, uint64(g.hi))
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

func decodeGuard(b []byte) (batchGuard, bool) {
	if len(b) < batchGuardSize || string(b[:4]) != batchGuardMagic ||
		crc32.ChecksumIEEE(b[:28]) != binary.BigEndian.Uint32(b[28:32]) {
		return batchGuard{}, false
	}
	g := batchGuard{
		base: int64(binary.BigEndian.Uint64(b[4:])),
		lo:   int64(binary.BigEndian.Uint64(b[12:])),
		hi:   int64(binary.BigEndian.Uint64(b[20:])),
	}
	return g, g.lo >= 0 && g.lo < g.hi
}

// readGuard returns the record in the BATCH file, if there is one. The
// file is opened for writing only when a batch first needs it (openGuard),
// so a partition that never wrote a batch holds no descriptor for it.
func (p *Partition) readGuard() (batchGuard, bool, error) {
	name := filepath.Join(p.dir, batchGuardName)
	b, err := readWholeFile(p.fs, name)
	if errors.Is(err, fs.ErrNotExist) {
		return batchGuard{}, false, nil
	}
	if err != nil {
		return batchGuard{}, false, fmt.Errorf("store: read %s: %w", name, err)
	}
	g, ok := decodeGuard(b)
	return g, ok, nil
}

// openGuard opens (creating, durably) the BATCH file for the writer.
func (p *Partition) openGuard() error {
	name := filepath.Join(p.dir, batchGuardName)
	f, err := p.fs.OpenFile(name, os.O_RDWR|os.O_CREATE, filePerm)
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	if err := p.fs.SyncDir(p.dir); err != nil { // the record must be found after a crash
		f.Close()
		return fmt.Errorf("sync %s: %w", p.dir, err)
	}
	p.w.guard = f
	return nil
}

// applyGuard cuts a valid prefix that ends inside a guarded batch range
// back to the range start.
func applyGuard(g batchGuard, ok bool, base, valid int64) int64 {
	if ok && g.base == base && g.lo < valid && valid < g.hi {
		return g.lo
	}
	return valid
}

// protectBatches durably records the range of the batches in the buffer
// (joined with those already written since the last fsync) before the
// buffer is written. It reports false after failing the partition.
func (p *Partition) protectBatches() bool {
	w := &p.w
	lo := w.bufBatchLo
	if w.guardLo >= 0 {
		lo = w.guardLo
	}
	if err := p.writeGuard(batchGuard{base: w.seg.base, lo: lo, hi: w.bufBatchHi}); err != nil {
		if !errors.Is(err, syscall.ENOSPC) {
			p.fail(fmt.Errorf("%w: %w", ErrFailed, err))
			return false
		}
		// Nothing of the buffer was written: fail it, and make what
		// was written before durable so it needs no guard.
		p.failBuf(fmt.Errorf("%w: %w", ErrNoSpace, err))
		p.syncOut()
		return false
	}
	w.guardLo, w.guardHi = lo, w.bufBatchHi
	return true
}

func (p *Partition) writeGuard(g batchGuard) error {
	if p.w.guard == nil {
		if err := p.openGuard(); err != nil {
			return err
		}
	}
	if _, err := p.w.guard.WriteAt(encodeGuard(g), 0); err != nil {
		return fmt.Errorf("write %s: %w", batchGuardName, err)
	}
	if err := p.w.guard.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", batchGuardName, err)
	}
	return nil
}

// settleGuard runs after a write that hit ENOSPC was truncated away: the
// guard may name a range that later single messages will fill, so make
// what was written durable and clear the guard before going on.
func (p *Partition) settleGuard() {
	w := &p.w
	if w.guardLo < 0 {
		return
	}
	p.syncOut()
	if w.err != nil {
		return
	}
	if err := p.writeGuard(batchGuard{}); err != nil {
		p.fail(fmt.Errorf("%w: %w", ErrFailed, err))
		return
	}
	w.guardLo = -1
}
