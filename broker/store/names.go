package store

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/metaq-go/metaq/protocol"
)

// File names inside the data directory and partition directories. See doc.go.
const (
	lockFileName      = "LOCK"       // in the data directory, flock'ed while open
	cleanMarkerName   = "CLEAN"      // in a partition directory after a clean Close
	batchGuardName    = "BATCH"      // in a partition directory: range of the unsynced batches
	segmentSuffix     = ".meta"      // segment data
	segmentNameFormat = "%020d.meta" // <start offset>.meta
	indexSuffix       = ".idx"       // sparse offset/time index sidecar
	indexNameFormat   = "%020d.idx"  // <start offset>.idx
	archiveSuffix     = ".arc"       // segment archived by retention (renamed)
	archiveNameFormat = "%020d.arc"  // <start offset>.arc
	zipNameFormat     = "%020d.zip"  // segment archived by retention (zipped)
	tempSuffix        = ".tmp"       // file being written, renamed when complete
	segmentNameLen    = 20 + len(".meta")
)

// Permissions of what the store creates: the broker's user reads and
// writes, its group (an operator's tools, a backup job) reads, others have
// no access. The umask can only remove more.
const (
	filePerm = 0o640 // segments, sidecars, markers, BATCH, LOCK, archives
	dirPerm  = 0o750 // the data directory and partition directories
)

func segmentName(base int64) string { return fmt.Sprintf(segmentNameFormat, base) }
func indexName(base int64) string   { return fmt.Sprintf(indexNameFormat, base) }

// parseSegmentName returns the start offset encoded in a segment file name.
func parseSegmentName(name string) (int64, bool) {
	if len(name) != segmentNameLen || !strings.HasSuffix(name, segmentSuffix) {
		return 0, false
	}
	v, err := strconv.ParseInt(name[:20], 10, 64)
	if err != nil || v < 0 {
		return 0, false
	}
	return v, true
}

// PartitionDirName returns the directory name of a partition: <topic>-<part>.
func PartitionDirName(topic string, part int) string {
	return topic + "-" + strconv.Itoa(part)
}

// partID identifies an open partition without building its name (the
// broker looks partitions up on every put).
type partID struct {
	topic string
	part  int
}

// ParsePartitionDirName splits a partition directory name at its last '-'; the
// topic must be a legal topic name (protocol.ValidTopic).
func ParsePartitionDirName(name string) (topic string, part int, ok bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 || i == len(name)-1 {
		return "", 0, false
	}
	p, err := strconv.Atoi(name[i+1:])
	if err != nil || p < 0 || strconv.Itoa(p) != name[i+1:] {
		return "", 0, false
	}
	if protocol.ValidTopic(name[:i]) != nil {
		return "", 0, false
	}
	return name[:i], p, true
}

// validPartition checks the name of a partition before it becomes a
// directory name: the topic by the module's one rule, the number >= 0.
func validPartition(topic string, part int) error {
	if err := protocol.ValidTopic(topic); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	if part < 0 {
		return fmt.Errorf("%w: partition %d of %q is negative", ErrInvalidName, part, topic)
	}
	return nil
}
