package replica

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// ConnSource is a Source over a client connection to the master's port.
type ConnSource struct {
	c *conn.Conn
}

// DialConn returns a Dial function for FollowerOptions that connects to
// the master at addr (host:port) with opts (TLS and credentials: every
// reconnect of the follower runs the handshake and authenticates again).
func DialConn(addr string, opts conn.Options) func(ctx context.Context) (Source, error) {
	return func(ctx context.Context) (Source, error) {
		c, err := conn.Dial(ctx, addr, opts)
		if err != nil {
			return nil, err
		}
		return &ConnSource{c: c}, nil
	}
}

// Handshake implements Source.
func (s *ConnSource) Handshake(ctx context.Context, req protocol.ReplicateRequest) error {
	rep, err := s.c.Do(ctx, conn.ProtocolRequest(&req))
	if err != nil {
		return err
	}
	if rep.Code != protocol.CodeOK {
		return fmt.Errorf("replica: master %s refused the replication stream: %d %s", s.c.Addr(), rep.Code, rep.Body)
	}
	return nil
}

// StatsItem is the stats item of the replication stream.
const StatsItem = "replication"

// State implements Source: it reads the `partition` and `epoch` lines of
// `stats replication`.
func (s *ConnSource) State(ctx context.Context) (MasterState, error) {
	lines, err := s.c.Stats(ctx, StatsItem)
	if err != nil {
		return MasterState{}, err
	}
	return ParseState(lines)
}

// ParseState reads the `partition` and `epoch` lines of a `stats
// replication` reply.
func ParseState(lines []protocol.StatsLine) (MasterState, error) {
	var st MasterState
	for _, l := range lines {
		switch l.Key {
		case "partition":
			pe, ok := parsePartitionLine(l.Value)
			if !ok {
				return st, fmt.Errorf("replica: bad partition line %q", l.Value)
			}
			st.Partitions = append(st.Partitions, pe)
		case "epoch":
			e, err := ParseEpochLine(l.Value)
			if err != nil {
				return st, err
			}
			st.Epochs = append(st.Epochs, e)
		}
	}
	return st, nil
}

// PartitionLine formats the value of a `partition` stats line.
func PartitionLine(p Partition, end int64) string {
	return store.PartitionDirName(p.Topic, p.Part) + " " + strconv.FormatInt(end, 10)
}

func parsePartitionLine(v string) (PartitionEnd, bool) {
	name, endText, ok := strings.Cut(v, " ")
	if !ok {
		return PartitionEnd{}, false
	}
	topic, part, ok := store.ParsePartitionDirName(name)
	end, err := strconv.ParseInt(endText, 10, 64)
	if !ok || err != nil {
		return PartitionEnd{}, false
	}
	return PartitionEnd{Partition: Partition{Topic: topic, Part: part}, End: end}, true
}

// Fetch implements Source with a long-poll get.
func (s *ConnSource) Fetch(ctx context.Context, p Partition, offset int64, maxSize int, maxWait time.Duration) (FetchResult, error) {
	rep, err := s.c.Get(ctx, &protocol.GetRequest{Topic: p.Topic, Group: ReplicaGroup, Partition: int32(p.Part),
		Offset: offset, MaxSize: int32(maxSize), MaxWaitMs: int32(max(1, maxWait.Milliseconds()))})
	if err != nil {
		return FetchResult{}, err
	}
	switch {
	case rep.Verb == protocol.VerbValue:
		data, err := store.ValidPrefix(rep.Body)
		if err != nil {
			return FetchResult{}, fmt.Errorf("replica: master sent damaged data for %s at %d: %w", p, offset, err)
		}
		return FetchResult{Data: data}, nil
	case rep.Code == protocol.CodeNotFound:
		return FetchResult{}, nil
	case rep.Code == protocol.CodeMoved:
		to, err := strconv.ParseInt(string(rep.Body), 10, 64)
		if err != nil {
			return FetchResult{}, fmt.Errorf("replica: bad 301 body %q from %s", rep.Body, s.c.Addr())
		}
		return FetchResult{Moved: true, MovedTo: to}, nil
	}
	return FetchResult{}, fmt.Errorf("replica: get %s at %d on %s: %d %s", p, offset, s.c.Addr(), rep.Code, rep.Body)
}

// Close implements Source.
func (s *ConnSource) Close() error { return s.c.Close() }
