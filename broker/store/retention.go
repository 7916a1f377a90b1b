package store

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// RunRetention applies every partition's retention policy as of now, age and
// size alike, whatever the schedule. The Store's own retention loop runs on
// Options.RetentionSchedule and RetentionInterval (retention_schedule.go).
func (s *Store) RunRetention(now time.Time) error {
	var errs []error
	for _, p := range s.Partitions() {
		errs = append(errs, p.RunRetention(now))
	}
	return errors.Join(errs...)
}

// RunRetention removes the closed segments at the start of the log that
// are older than the policy's MaxAge (by their newest message id time) or
// that make the partition larger than MaxBytes. A removed segment is
// deleted or archived at once unless a Slice still references it; then the
// last Release does it.
func (p *Partition) RunRetention(now time.Time) error {
	return p.runRetention(now, p.topt.Retention)
}

// runRetention is RunRetention with the policy given (the retention loop
// passes a size-only one between two activations of the age schedule).
func (p *Partition) runRetention(now time.Time, pol RetentionPolicy) error {
	if pol.MaxAge <= 0 && pol.MaxBytes <= 0 {
		return nil
	}
	cutoff := now.Add(-pol.MaxAge).UnixMilli()
	var removed []*segment
	p.mu.Lock()
	total := int64(0)
	if len(p.segs) > 0 {
		total = p.visibleEnd.Load() - p.segs[0].base
	}
	for len(p.segs) > 1 {
		size, count, maxTS := p.segs[0].stats()
		expired := pol.MaxAge > 0 && maxTS <= cutoff
		tooBig := pol.MaxBytes > 0 && total > pol.MaxBytes
		if !expired && !tooBig {
			break
		}
		removed = append(removed, p.segs[0])
		p.segs[0] = nil
		p.segs = p.segs[1:]
		total -= size
		p.count.Add(-count)
	}
	p.mu.Unlock()
	p.rmu.Lock()
	for _, seg := range removed {
		p.retired = append(p.retired, retiredSeg{seg: seg, action: pol.Action})
	}
	p.rmu.Unlock()
	for _, seg := range removed {
		p.log.Info("store: retention removes segment", "segment", seg.path, "action", pol.Action)
		seg.release = p.retiredFree
		seg.unref()
	}
	return nil
}

// retiredSeg is a segment retention removed from the log, waiting for its
// last reader before it is deleted or archived.
type retiredSeg struct {
	seg    *segment
	action RetentionAction
	free   bool // no reference left
}

// retiredFree runs when a retired segment's last reference goes. Segments
// are disposed of strictly oldest first, each durably (directory fsync)
// before the next: deleting a newer one while an older one is still in use
// would, after a crash, leave a hole in the log.
func (p *Partition) retiredFree(seg *segment) {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	for i := range p.retired {
		if p.retired[i].seg == seg {
			p.retired[i].free = true
		}
	}
	for len(p.retired) > 0 && p.retired[0].free {
		r := p.retired[0]
		p.retired[0] = retiredSeg{}
		p.retired = p.retired[1:]
		p.dispose(r.seg, r.action)
	}
}

// dispose closes a segment that left the log and deletes or archives it,
// durably. It runs under p.rmu, on the goroutine that dropped the last
// reference of the oldest retired segment.
func (p *Partition) dispose(seg *segment, action RetentionAction) {
	p.files.drop(seg)
	var err error
	switch action {
	case Archive:
		err = p.fs.Rename(seg.path, filepath.Join(p.dir, fmt.Sprintf(archiveNameFormat, seg.base)))
	case ArchiveZip:
		err = p.zipSegment(seg)
		if err == nil {
			err = p.fs.Remove(seg.path)
		}
	default:
		err = p.fs.Remove(seg.path)
	}
	if rerr := p.fs.Remove(filepath.Join(p.dir, indexName(seg.base))); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
		err = rerr
	}
	if err == nil {
		err = p.fs.SyncDir(p.dir)
	}
	if err != nil {
		p.log.Error("store: retention could not dispose of segment", "segment", seg.path, "err", err)
	}
}

// fileWriter adapts a File to a sequential io.Writer.
type fileWriter struct {
	f   File
	off int64
}

func (w *fileWriter) Write(b []byte) (int, error) {
	n, err := w.f.WriteAt(b, w.off)
	w.off += int64(n)
	return n, err
}

func (p *Partition) zipSegment(seg *segment) (err error) {
	src, err := p.fs.OpenFile(seg.path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer src.Close()
	size, err := src.Size()
	if err != nil {
		return err
	}
	name := filepath.Join(p.dir, fmt.Sprintf(zipNameFormat, seg.base))
	dst, err := p.fs.OpenFile(name+tempSuffix, os.O_RDWR|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return err
	}
	zw := zip.NewWriter(&fileWriter{f: dst})
	w, err := zw.Create(filepath.Base(seg.path))
	if err == nil {
		_, err = io.Copy(w, io.NewSectionReader(src, 0, size))
	}
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = p.fs.Rename(name+tempSuffix, name)
	}
	return err
}
