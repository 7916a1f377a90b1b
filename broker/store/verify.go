package store

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// SegmentReport is the result of verifying one segment.
type SegmentReport struct {
	Path     string
	Start    int64 // start offset (from the file name)
	Size     int64 // bytes checked
	Valid    int64 // length of the valid prefix
	Messages int64 // messages in the valid prefix
	Err      error // nil, or why the prefix stops (wraps ErrCorrupt or ErrIncomplete)
}

// VerifyReport is the result of verifying a partition.
type VerifyReport struct {
	Dir      string
	Segments []SegmentReport
}

// Verify checks every message of every segment of the partition directory
// dir (an offline check for a "segments verify" command; run it on a
// stopped broker or a copy). It returns an error wrapping ErrCorrupt when a
// checksum fails, a closed segment ends inside a message, or segments are
// not contiguous. A torn or zero-filled tail of the last segment (an
// unclean shutdown, repaired by the next open) is reported in the report
// but is not an error.
func Verify(fsys FS, dir string) (VerifyReport, error) {
	if fsys == nil {
		fsys = OSFS{}
	}
	rep := VerifyReport{Dir: dir}
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return rep, err
	}
	var bases []int64
	for _, e := range ents {
		if b, ok := parseSegmentName(e.Name); ok && !e.IsDir {
			bases = append(bases, b)
		}
	}
	var errs []error
	for i, base := range bases {
		sr := verifySegment(fsys, filepath.Join(dir, segmentName(base)), base)
		if i > 0 {
			prev := rep.Segments[i-1]
			if prev.Start+prev.Size != base {
				errs = append(errs, fmt.Errorf("%w: %s ends at offset %d, next segment starts at %d",
					ErrCorrupt, prev.Path, prev.Start+prev.Size, base))
			}
		}
		last := i == len(bases)-1
		if sr.Err != nil && !(last && (errors.Is(sr.Err, ErrIncomplete) || sr.Err == errZeroHeader)) {
			errs = append(errs, fmt.Errorf("%s at offset %d: %w", sr.Path, sr.Start+sr.Valid, sr.Err))
		}
		rep.Segments = append(rep.Segments, sr)
	}
	return rep, errors.Join(errs...)
}

func verifySegment(fsys FS, path string, base int64) SegmentReport {
	sr := SegmentReport{Path: path, Start: base}
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		sr.Err = err
		return sr
	}
	defer f.Close()
	if sr.Size, err = f.Size(); err != nil {
		sr.Err = err
		return sr
	}
	res, err := scanSegment(f, sr.Size, math.MaxInt64)
	sr.Valid, sr.Messages = res.valid, res.count
	switch {
	case err != nil:
		sr.Err = err
	case res.stop != nil:
		sr.Err = res.stop
	}
	return sr
}

// Verify checks every durable message of the open partition and returns an
// error wrapping ErrCorrupt when one fails its checksum.
func (p *Partition) Verify() (VerifyReport, error) {
	p.mu.RLock()
	segs := append([]*segment(nil), p.segs...)
	for _, s := range segs {
		s.ref()
	}
	p.mu.RUnlock()
	rep := VerifyReport{Dir: p.dir}
	var errs []error
	for _, seg := range segs {
		size, _, _ := seg.stats()
		var res scanResult
		f, err := p.files.pin(seg)
		if err == nil {
			res, err = scanSegment(f, size, math.MaxInt64)
			p.files.unpin(seg)
		}
		sr := SegmentReport{Path: seg.path, Start: seg.base, Size: size, Valid: res.valid, Messages: res.count, Err: err}
		if err == nil && res.stop != nil {
			sr.Err = res.stop
		}
		if sr.Err != nil {
			errs = append(errs, fmt.Errorf("%s at offset %d: %w", sr.Path, sr.Start+sr.Valid, sr.Err))
		}
		rep.Segments = append(rep.Segments, sr)
		seg.unref()
	}
	return rep, errors.Join(errs...)
}
