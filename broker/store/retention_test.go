package store_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker/store"
)

func segFiles(t *testing.T, fsys store.FS, dir, ext string) []string {
	t.Helper()
	var out []string
	for _, e := range mustReadDir(t, fsys, dir) {
		if strings.HasSuffix(e.Name, ext) {
			out = append(out, e.Name)
		}
	}
	return out
}

func TestRetention(t *testing.T) {
	t.Run("by age", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
			now := time.Now()
			s := mustOpen(t, dir, store.Options{FS: fsys, MaxSegmentSize: 300, Now: func() time.Time { return now },
				Retention: store.RetentionPolicy{MaxAge: time.Hour}})
			defer s.Close()
			p := mustPart(t, s, "t", 0)
			appendN(t, p, 0, 20) // old messages
			now = now.Add(2 * time.Hour)
			r := appendN(t, p, 20, 20) // fresh ones, starting a new segment
			before := p.Stats()
			if err := s.RunRetention(now); err != nil {
				t.Fatal(err)
			}
			after := p.Stats()
			if after.Segments >= before.Segments || after.MinOffset > r[0].Offset {
				t.Fatalf("before %+v after %+v (first fresh offset %d)", before, after, r[0].Offset)
			}
			recs := readAll(t, p)
			if int64(len(recs)) != after.Messages || recs[len(recs)-1].Offset != r[19].Offset {
				t.Fatalf("%d messages read, stats say %d", len(recs), after.Messages)
			}
			if n := len(segFiles(t, fsys, filepath.Join(dir, "t-0"), ".meta")); n != after.Segments {
				t.Fatalf("%d files for %d segments", n, after.Segments)
			}
		})
	})
	t.Run("by size with a held reader", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
			s := mustOpen(t, dir, store.Options{FS: fsys, MaxSegmentSize: 300,
				Retention: store.RetentionPolicy{MaxBytes: 700}})
			defer s.Close()
			p := mustPart(t, s, "t", 0)
			appendN(t, p, 0, 40)
			sl, err := p.Read(0, 100)
			if err != nil {
				t.Fatal(err)
			}
			pdir := filepath.Join(dir, "t-0")
			if err := s.RunRetention(time.Now()); err != nil {
				t.Fatal(err)
			}
			st := p.Stats()
			if st.Bytes > 700+300 || st.MinOffset == 0 {
				t.Fatalf("after retention %+v", st)
			}
			first := "00000000000000000000.meta"
			if files := segFiles(t, fsys, pdir, ".meta"); files[0] != first {
				t.Fatalf("segment under a reader removed: %v", files)
			}
			b, err := sl.ReadAll(nil)
			if err != nil || !bytes.Contains(b, payload(0)) {
				t.Fatalf("held slice unreadable: %v", err)
			}
			sl.Release()
			if files := segFiles(t, fsys, pdir, ".meta"); files[0] == first || len(files) != st.Segments {
				t.Fatalf("segment not removed after release: %v", files)
			}
		})
	})
	t.Run("archive renames", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
			s := mustOpen(t, dir, store.Options{FS: fsys, MaxSegmentSize: 300,
				Retention: store.RetentionPolicy{MaxBytes: 1, Action: store.Archive}})
			defer s.Close()
			p := mustPart(t, s, "t", 0)
			appendN(t, p, 0, 20)
			s.RunRetention(time.Now())
			arcs := segFiles(t, fsys, filepath.Join(dir, "t-0"), ".arc")
			if len(arcs) == 0 || arcs[0] != "00000000000000000000.arc" || p.Stats().Segments != 1 {
				t.Fatalf("archives %v", arcs)
			}
		})
	})
	t.Run("archive zips", func(t *testing.T) {
		dir := t.TempDir()
		s := mustOpen(t, dir, store.Options{MaxSegmentSize: 300,
			Retention: store.RetentionPolicy{MaxBytes: 1, Action: store.ArchiveZip}})
		defer s.Close()
		p := mustPart(t, s, "t", 0)
		appendN(t, p, 0, 20)
		seg0, _ := os.ReadFile(filepath.Join(dir, "t-0", "00000000000000000000.meta"))
		s.RunRetention(time.Now())
		zr, err := zip.OpenReader(filepath.Join(dir, "t-0", "00000000000000000000.zip"))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		f, err := zr.File[0].Open()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(f)
		if !bytes.Equal(got, seg0) || zr.File[0].Name != "00000000000000000000.meta" {
			t.Fatalf("zip holds %d bytes named %s", len(got), zr.File[0].Name)
		}
		if _, err := os.Stat(filepath.Join(dir, "t-0", "00000000000000000000.meta")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("segment still there: %v", err)
		}
	})
	t.Run("scheduled by the store", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
			s := mustOpen(t, dir, store.Options{FS: fsys, MaxSegmentSize: 300, RetentionInterval: 5 * time.Millisecond,
				Retention: store.RetentionPolicy{MaxBytes: 1}})
			defer s.Close()
			p := mustPart(t, s, "t", 0)
			appendN(t, p, 0, 20)
			eventually(t, 10*time.Second, "scheduled retention", func() bool { return p.Stats().Segments == 1 })
		})
	})
}

// TestTopicOverrides: per-topic flush and retention policies.
func TestTopicOverrides(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fsys store.FS, dir string) {
		s := mustOpen(t, dir, store.Options{FS: fsys, MaxSegmentSize: 300,
			Topic: func(topic string) store.TopicOptions {
				if topic == "keep" {
					return store.TopicOptions{Retention: store.RetentionPolicy{MaxAge: -1},
						Flush: store.FlushPolicy{Mode: store.Threshold, UnflushThreshold: 1000, UnflushInterval: time.Hour}}
				}
				return store.TopicOptions{Retention: store.RetentionPolicy{MaxBytes: 1}}
			}})
		defer s.Close()
		keep, drop := mustPart(t, s, "keep", 0), mustPart(t, s, "drop", 0)
		r := appendN(t, keep, 0, 20)
		appendN(t, drop, 0, 20)
		if total := r[19].Offset + r[19].Size; keep.End() >= total {
			t.Fatalf("threshold topic: all %d bytes visible before the fsync", total)
		}
		if err := keep.Flush(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if err := s.RunRetention(time.Now().Add(1000 * time.Hour)); err != nil {
			t.Fatal(err)
		}
		if keep.Earliest() != 0 || keep.Stats().Segments < 2 {
			t.Fatalf("kept topic trimmed: %+v", keep.Stats())
		}
		if drop.Stats().Segments != 1 {
			t.Fatalf("size retention not applied: %+v", drop.Stats())
		}
		if got := s.Partitions(); len(got) != 2 || got[0].Topic() != "drop" || got[1].Topic() != "keep" {
			t.Fatalf("Partitions() = %v", got)
		}
	})
}
