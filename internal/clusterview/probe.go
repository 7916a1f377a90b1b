package clusterview

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes"
)

// msgIDEpoch is the MetaQ message-id epoch (Unix milliseconds): ids are
// (millis - msgIDEpoch) << 22 | brokerId << 12 | seq (PROTOCOL.md §4).
const msgIDEpoch = 1303895660503

// MsgIDTime is the wall-clock time a snowflake message id was assigned at.
func MsgIDTime(id int64) time.Time { return time.UnixMilli(id>>22 + msgIDEpoch) }

// Probe asks brokers about partitions over the wire: log start and
// end (`offset`), message boundaries (`offset` snaps to a message start) and
// message times (`get` of one message, time from its id). One connection per
// broker, dialled on first use; not safe for concurrent use.
type Probe struct {
	group   string // sent in offset/get requests (brokers only log it)
	addrs   map[int]string
	conns   map[int]*conn.Conn
	timeout time.Duration
}

// NewProbe reads the registered brokers from ZooKeeper.
func NewProbe(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string, timeout time.Duration) (*Probe, error) {
	brokers, err := ListBrokers(ctx, s, p)
	if err != nil {
		return nil, err
	}
	pr := &Probe{group: group, addrs: map[int]string{}, conns: map[int]*conn.Conn{}, timeout: timeout}
	for _, b := range brokers {
		if b.Registered && b.Addr != "" {
			pr.addrs[b.ID] = b.Addr
		}
	}
	return pr, nil
}

// Close closes the probe's broker connections.
func (pr *Probe) Close() {
	for _, c := range pr.conns {
		_ = c.Close()
	}
}

func (pr *Probe) conn(ctx context.Context, brokerID int) (*conn.Conn, error) {
	if c := pr.conns[brokerID]; c != nil {
		select {
		case <-c.Done():
		default:
			return c, nil
		}
	}
	addr, ok := pr.addrs[brokerID]
	if !ok {
		return nil, fmt.Errorf("broker %d is not registered in ZooKeeper (stopped?)", brokerID)
	}
	c, err := DialBroker(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("broker id %d: %w", brokerID, err)
	}
	pr.conns[brokerID] = c
	return c, nil
}

// offset asks the broker for the valid offset nearest to off (the start of
// the message holding it; the end when off is past it; the earliest when
// before it). A partition the broker has never written is empty: 0.
func (pr *Probe) Offset(ctx context.Context, tp coordinator.TopicPartition, off int64) (int64, error) {
	c, err := pr.conn(ctx, tp.BrokerID)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, pr.timeout)
	defer cancel()
	got, err := c.Offset(ctx, &protocol.OffsetRequest{Topic: tp.Topic, Group: pr.group, Partition: int32(tp.Partition.Partition), Offset: off})
	if errors.Is(err, conn.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%s: offset %d: %w", tp, off, err)
	}
	return got, nil
}

// earliest returns the first readable offset of tp.
func (pr *Probe) Earliest(ctx context.Context, tp coordinator.TopicPartition) (int64, error) {
	return pr.Offset(ctx, tp, 0)
}

// end returns the log end (the offset after the last visible message).
func (pr *Probe) End(ctx context.Context, tp coordinator.TopicPartition) (int64, error) {
	return pr.Offset(ctx, tp, math.MaxInt64)
}

// messageAt reads the header of the message starting at off: its id and the
// offset of the next message.
func (pr *Probe) MessageAt(ctx context.Context, tp coordinator.TopicPartition, off int64) (id, next int64, err error) {
	c, err := pr.conn(ctx, tp.BrokerID)
	if err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, pr.timeout)
	defer cancel()
	// Our brokers return at least one whole message whatever maxSize says;
	// MetaQ's return maxSize bytes, of which only the header is needed.
	rep, err := c.Get(ctx, &protocol.GetRequest{Topic: tp.Topic, Group: pr.group, Partition: int32(tp.Partition.Partition),
		Offset: off, MaxSize: protocol.MessageHeaderSize})
	if err != nil {
		return 0, 0, fmt.Errorf("%s: get at %d: %w", tp, off, err)
	}
	if rep.Verb != protocol.VerbValue {
		return 0, 0, fmt.Errorf("%s: get at %d: broker replied %d %s: %s", tp, off, rep.Code, protocol.CodeName(rep.Code), rep.Body)
	}
	if len(rep.Body) < protocol.MessageHeaderSize {
		return 0, 0, fmt.Errorf("%s: get at %d: %d bytes, shorter than a message header", tp, off, len(rep.Body))
	}
	n := int64(int32(binary.BigEndian.Uint32(rep.Body)))
	if n < 0 {
		return 0, 0, fmt.Errorf("%s: message at %d has a negative length", tp, off)
	}
	return int64(binary.BigEndian.Uint64(rep.Body[8:])), off + protocol.MessageHeaderSize + n, nil
}

// offsetForTime returns the offset of the first message of tp whose id time
// is at or after t (the end if there is none), by binary search over the
// log: `offset` snaps a byte position to a message start, and a one-message
// `get` gives that message's id and so its time. It assumes ids increase
// along the log, which holds per broker (ids are snowflakes from a clock
// that never goes back). About 2·log2(log bytes) round trips.
func (pr *Probe) OffsetForTime(ctx context.Context, tp coordinator.TopicPartition, t time.Time) (int64, error) {
	lo, err := pr.Earliest(ctx, tp)
	if err != nil {
		return 0, err
	}
	hi, err := pr.End(ctx, tp)
	if err != nil {
		return 0, err
	}
	// Invariant: every message before lo is older than t; the message at hi
	// (if any) is not.
	for lo < hi {
		s, err := pr.Offset(ctx, tp, lo+(hi-lo)/2)
		if err != nil {
			return 0, err
		}
		if s < lo || s >= hi { // a broker that snaps coarsely (MetaQ: to a segment start)
			s = lo
		}
		id, next, err := pr.MessageAt(ctx, tp, s)
		if err != nil {
			return 0, err
		}
		if next <= s {
			return 0, fmt.Errorf("%s: no progress reading the message at %d", tp, s)
		}
		if MsgIDTime(id).Before(t) {
			lo = next
		} else {
			hi = s
		}
	}
	return lo, nil
}

// FormatOffset prints an offset, "-" when unknown (negative): how the
// commands and the dashboard show offsets, log ends and lags.
func FormatOffset(v int64) string {
	if v < 0 {
		return "-"
	}
	return strconv.FormatInt(v, 10)
}
