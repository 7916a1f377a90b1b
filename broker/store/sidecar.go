package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Index sidecar <start>.idx layout (all big-endian), see doc.go:
//
//	magic "MQIX" | version u32 = 1 | segment size i64 | count i64 | maxTS i64 |
//	n u32 | n × (rel i64, ts i64) | crc32 IEEE of all preceding bytes u32
const (
	indexMagic      = "MQIX"
	indexVersion    = 1
	indexHeaderSize = 4 + 4 + 8 + 8 + 8 + 4
)

var errBadSidecar = errors.New("store: damaged index sidecar")

func encodeIndex(size, count, maxTS int64, idx []indexEntry) []byte {
	b := make([]byte, 0, indexHeaderSize+16*len(idx)+4)
	b = append(b, indexMagic...)
	b = binary.BigEndian.AppendUint32(b, indexVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(size))
	b = binary.BigEndian.AppendUint64(b, uint64(count))
	b = binary.BigEndian.AppendUint64(b, uint64(maxTS))
	b = binary.BigEndian.AppendUint32(b, uint32(len(idx)))
	for _, e := range idx {
		b = binary.BigEndian.AppendUint64(b, uint64(e.rel))
		b = binary.BigEndian.AppendUint64(b, uint64(e.ts))
	}
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

func decodeIndex(b []byte) (size, count, maxTS int64, idx []indexEntry, err error) {
	if len(b) < indexHeaderSize+4 || string(b[:4]) != indexMagic ||
		binary.BigEndian.Uint32(b[4:8]) != indexVersion {
		return 0, 0, 0, nil, errBadSidecar
	}
	body := b[:len(b)-4]
	if crc32.ChecksumIEEE(body) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return 0, 0, 0, nil, errBadSidecar
	}
	size = int64(binary.BigEndian.Uint64(b[8:16]))
	count = int64(binary.BigEndian.Uint64(b[16:24]))
	maxTS = int64(binary.BigEndian.Uint64(b[24:32]))
	n := int(binary.BigEndian.Uint32(b[32:36]))
	if len(body) != indexHeaderSize+16*n {
		return 0, 0, 0, nil, errBadSidecar
	}
	idx = make([]indexEntry, n)
	prev := int64(-1)
	for i := range idx {
		p := body[indexHeaderSize+16*i:]
		idx[i] = indexEntry{rel: int64(binary.BigEndian.Uint64(p)), ts: int64(binary.BigEndian.Uint64(p[8:]))}
		if idx[i].rel <= prev || idx[i].rel >= size {
			return 0, 0, 0, nil, errBadSidecar
		}
		prev = idx[i].rel
	}
	return size, count, maxTS, idx, nil
}

// readWholeFile reads a small file through the FS.
func readWholeFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := f.Size()
	if err != nil {
		return nil, err
	}
	if n > 1<<30 {
		return nil, fmt.Errorf("store: %s: unexpectedly large (%d bytes)", name, n)
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return b, nil
}

// writeFileAtomic writes name via name.tmp and a rename. With durable set
// it fsyncs the file before the rename and the directory after it.
func writeFileAtomic(fsys FS, name string, data []byte, durable bool) error {
	tmp := name + tempSuffix
	f, err := fsys.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, 0)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, name)
	}
	if err == nil && durable {
		err = fsys.SyncDir(filepath.Dir(name))
	}
	if err != nil {
		_ = fsys.Remove(tmp)
	}
	return err
}

// Clean marker CLEAN: one text line "metaq-clean 1 <active start> <active size> <crc32>\n"
// where crc32 is the decimal CRC-32 IEEE of the line up to the last space.
const cleanMagic = "metaq-clean 1"

func encodeClean(base, size int64) []byte {
	s := fmt.Sprintf("%s %d %d", cleanMagic, base, size)
	return []byte(fmt.Sprintf("%s %d\n", s, crc32.ChecksumIEEE([]byte(s))))
}

func decodeClean(b []byte) (base, size int64, ok bool) {
	line := strings.TrimSuffix(string(b), "\n")
	i := strings.LastIndexByte(line, ' ')
	if i < 0 || !strings.HasPrefix(line, cleanMagic+" ") {
		return 0, 0, false
	}
	sum, err := strconv.ParseUint(line[i+1:], 10, 32)
	if err != nil || uint32(sum) != crc32.ChecksumIEEE([]byte(line[:i])) {
		return 0, 0, false
	}
	f := strings.Fields(line[len(cleanMagic):i])
	if len(f) != 2 {
		return 0, 0, false
	}
	base, err1 := strconv.ParseInt(f[0], 10, 64)
	size, err2 := strconv.ParseInt(f[1], 10, 64)
	return base, size, err1 == nil && err2 == nil
}
