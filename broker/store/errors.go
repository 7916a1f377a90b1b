package store

import (
	"errors"
	"fmt"
)

// Sentinel errors. Test for them with errors.Is; the store wraps them with
// context using %w.
var (
	// ErrClosed is returned by operations on a closed Store or Partition.
	ErrClosed = errors.New("store: closed")

	// ErrFailed is returned by appends on a partition that hit a write or
	// fsync error. The error is sticky: the partition refuses further appends
	// until the process restarts and recovery truncates the log to its last
	// valid message. (ENOSPC is the exception, see ErrNoSpace.) A read fault
	// (a segment file truncated or unreadable) or an error while opening the
	// partition also fails it, and then reads get ErrFailed too. See
	// Store.FailedPartitions.
	ErrFailed = errors.New("store: partition failed after an I/O error, restart the broker to recover")

	// ErrNoSpace is returned by appends when the file system is full. It also
	// wraps syscall.ENOSPC. The partial write is truncated away, reads keep
	// working, and appends succeed again as soon as space is freed: delete
	// old segments (retention) or other files on the data volume.
	ErrNoSpace = errors.New("store: no space left on device; free space on the data volume (appends resume automatically, no restart needed)")

	// ErrCaughtUp is returned by Read when the offset equals the visible end
	// of the partition: there is nothing new to read (wire code 404).
	ErrCaughtUp = errors.New("store: offset is at the end of the visible data")

	// ErrOffsetOutOfRange is matched (errors.Is) by *OffsetTooSmallError and
	// *OffsetTooLargeError.
	ErrOffsetOutOfRange = errors.New("store: offset out of range")

	// ErrCorrupt reports a message whose checksum does not match, or a
	// segment whose structure is broken. Corrupt data is never delivered.
	ErrCorrupt = errors.New("store: corrupt data")

	// ErrInvalidOffset is matched (errors.Is) by *MisalignedOffsetError: a
	// read offset is not the start of a message (a client sent an offset
	// that the broker never handed out).
	ErrInvalidOffset = errors.New("store: offset is not a message boundary")

	// ErrLocked is returned by Open when another process holds the data
	// directory's LOCK file.
	ErrLocked = errors.New("store: data directory is locked by another process")

	// ErrNoPartition is returned by Store.Partition when the partition does
	// not exist and create is false.
	ErrNoPartition = errors.New("store: no such partition")

	// ErrInvalidName is returned for a topic name protocol.ValidTopic refuses
	// (the error wraps its *protocol.TopicNameError) or a negative partition
	// number.
	ErrInvalidName = errors.New("store: invalid topic name or partition number")

	// ErrMessageTooLarge is returned when put data exceeds Options.MaxMessageSize.
	ErrMessageTooLarge = errors.New("store: message too large")

	// ErrQueueFull is returned by Append when more than Options.MaxQueueBytes
	// are waiting to be written on the partition; answer "busy" and retry.
	ErrQueueFull = errors.New("store: append queue full")
)

// OffsetTooSmallError is returned by Read for an offset before the first
// segment (wire code 301 with Earliest as the body).
type OffsetTooSmallError struct {
	Offset   int64 // the requested offset
	Earliest int64 // the first valid offset of the partition
}

func (e *OffsetTooSmallError) Error() string {
	return fmt.Sprintf("store: offset %d is before the earliest offset %d", e.Offset, e.Earliest)
}

// Is makes errors.Is(err, ErrOffsetOutOfRange) true.
func (e *OffsetTooSmallError) Is(target error) bool { return target == ErrOffsetOutOfRange }

// OffsetTooLargeError is returned by Read for an offset beyond the visible
// end of the partition (wire code 404, or 301 with End).
type OffsetTooLargeError struct {
	Offset int64 // the requested offset
	End    int64 // the visible end of the partition
}

func (e *OffsetTooLargeError) Error() string {
	return fmt.Sprintf("store: offset %d is beyond the end offset %d", e.Offset, e.End)
}

// Is makes errors.Is(err, ErrOffsetOutOfRange) true.
func (e *OffsetTooLargeError) Is(target error) bool { return target == ErrOffsetOutOfRange }

// MisalignedOffsetError is returned by Read and the Slice readers for an
// offset inside a message (wire code 301 with Next as the body: the
// consumer continues at the next message).
type MisalignedOffsetError struct {
	Offset int64 // the requested offset
	Next   int64 // the start of the message after the one holding Offset
}

func (e *MisalignedOffsetError) Error() string {
	return fmt.Sprintf("store: offset %d is not a message boundary; the next message starts at %d", e.Offset, e.Next)
}

// Is makes errors.Is(err, ErrInvalidOffset) true.
func (e *MisalignedOffsetError) Is(target error) bool { return target == ErrInvalidOffset }
