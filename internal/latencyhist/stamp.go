package latencyhist

import "encoding/binary"

// StampSize is the header of an end-to-end benchmark payload: the run id
// (so a consumer skips other runs' messages), then the send time in Unix
// nanoseconds, both big-endian. `metaq bench e2e` and `peerbench
// redis-e2e` use the same payloads.
const StampSize = 16

// Stamped returns a payload of size bytes (at least StampSize) carrying
// run and sentNanos, filled with letters after the header.
func Stamped(run uint64, sentNanos int64, size int) []byte {
	b := make([]byte, max(size, StampSize))
	binary.BigEndian.PutUint64(b, run)
	binary.BigEndian.PutUint64(b[8:], uint64(sentNanos))
	for i := StampSize; i < len(b); i++ {
		b[i] = byte('a' + i%26)
	}
	return b
}

// ReadStamp returns the send time of a payload of run; ok is false for a
// payload too short or of another run.
func ReadStamp(p []byte, run uint64) (sentNanos int64, ok bool) {
	if len(p) < StampSize || binary.BigEndian.Uint64(p) != run {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(p[8:])), true
}
