package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/go-zookeeper/zk"

	"github.com/metaq-go/metaq/zkrecipes"
)

// Offset is a committed position: MetaQ stores "<msgId>-<offset>" where
// offset is the next byte offset to fetch in the partition and msgId the id
// of the last message consumed (-1 when unknown).
type Offset struct {
	MsgID  int64
	Offset int64
}

// String encodes the offset MetaQ-compatibly: "<msgId>-<offset>".
func (o Offset) String() string {
	return strconv.FormatInt(o.MsgID, 10) + "-" + strconv.FormatInt(o.Offset, 10)
}

// ParseOffset decodes "<msgId>-<offset>" (split at the LAST '-', so a
// negative msgId such as "-1-1024" works) or a bare "<offset>" (msgId -1).
// The offset itself must be non-negative.
func ParseOffset(s string) (Offset, error) {
	s = strings.TrimSpace(s)
	bad := func() (Offset, error) {
		return Offset{}, fmt.Errorf("coordinator: offset %q is not <msgId>-<offset> or <offset>", s)
	}
	i := strings.LastIndexByte(s, '-')
	if i <= 0 { // no '-' or only a leading sign: a bare offset
		off, err := strconv.ParseInt(s, 10, 64)
		if err != nil || off < 0 {
			return bad()
		}
		return Offset{MsgID: -1, Offset: off}, nil
	}
	msgID, err1 := strconv.ParseInt(s[:i], 10, 64)
	off, err2 := strconv.ParseInt(s[i+1:], 10, 64)
	if err1 != nil || err2 != nil || off < 0 || strings.HasPrefix(s[i+1:], "+") {
		return bad()
	}
	return Offset{MsgID: msgID, Offset: off}, nil
}

// FetchOffset reads the committed offset of a partition; found is false if
// none was ever committed.
func FetchOffset(ctx context.Context, s *zkrecipes.Session, paths Paths, group string, tp TopicPartition) (o Offset, found bool, err error) {
	data, _, err := s.Get(ctx, offsetPath(paths, group, tp))
	if errors.Is(err, zk.ErrNoNode) {
		return Offset{}, false, nil
	}
	if err != nil {
		return Offset{}, false, err
	}
	o, err = ParseOffset(string(data))
	return o, err == nil, err
}

// commitFenced writes offset o for tp in one Multi with checks of the
// fencing token: the claim's fence node exists and the owner node has the
// version the claim saw. If either fails (ownership lost, session ended) it
// returns ErrNotOwner and nothing is written. The offset node is created
// (inside a Multi with the same checks) when missing.
func commitFenced(ctx context.Context, s *zkrecipes.Session, paths Paths, group string, tp TopicPartition,
	tok fenceToken, o Offset) error {
	p := offsetPath(paths, group, tp)
	fence := &zk.CheckVersionRequest{Path: tok.fence, Version: -1}
	check := &zk.CheckVersionRequest{Path: tok.owner, Version: tok.version}
	ownerNode := tok.owner
	data := []byte(o.String())
	for attempt := 0; ; attempt++ {
		res, err := s.Multi(ctx, fence, check, &zk.SetDataRequest{Path: p, Data: data, Version: -1})
		if err == nil {
			return nil
		}
		if ownerCheckFailed(res) {
			return fmt.Errorf("%w: %s (owner node %s is gone)", ErrNotOwner, tp, ownerNode)
		}
		if !errors.Is(err, zk.ErrNoNode) || attempt > 3 {
			return err
		}
		// The offset node (or its parents) does not exist yet.
		if err := s.EnsurePath(ctx, paths.GroupOffsets(group, tp.Topic)); err != nil {
			return err
		}
		res, err = s.Multi(ctx, fence, check, &zk.CreateRequest{Path: p, Data: data})
		if err == nil {
			return nil
		}
		if ownerCheckFailed(res) {
			return fmt.Errorf("%w: %s (owner node %s is gone)", ErrNotOwner, tp, ownerNode)
		}
		if !errors.Is(err, zk.ErrNodeExists) && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
	}
}

// fenceToken is what a commit checks: the claim's fence node and the owner
// node at the version the claim saw.
type fenceToken struct {
	fence   string
	owner   string
	version int32
}

// ownerCheckFailed reports whether one of the first two operations (the fence
// and owner checks) of a failed Multi failed.
func ownerCheckFailed(res []zk.MultiResponse) bool {
	for i := 0; i < 2 && i < len(res); i++ {
		if errors.Is(res[i].Error, zk.ErrNoNode) || errors.Is(res[i].Error, zk.ErrBadVersion) {
			return true
		}
	}
	return false
}

// PartitionLag is what ZooKeeper knows about one partition of a group, plus
// the log end if a LogEnd hook was given.
type PartitionLag struct {
	TopicPartition
	Committed  Offset
	HasOffset  bool
	Owner      string // member (or MetaQ consumer) id of the current owner ("" if none)
	LogEnd     int64  // -1 if unknown
	Lag        int64  // LogEnd - Committed.Offset, -1 if unknown
	AssignedTo string // member the leader assigned it to ("" if none)
}

// LogEnd returns a partition's log end offset (from a broker); used by GroupLag.
type LogEnd func(ctx context.Context, tp TopicPartition) (int64, error)

// GroupLag reports, for every partition of every topic the group has
// offsets, owners or assignments for, the committed offset, the owner and the
// assignment; with logEnd (may be nil) also the log end and the lag. Tools
// use it; it reads ZooKeeper only and sets no watch.
func GroupLag(ctx context.Context, s *zkrecipes.Session, paths Paths, group string, logEnd LogEnd) ([]PartitionLag, error) {
	rows := map[TopicPartition]*PartitionLag{}
	row := func(tp TopicPartition) *PartitionLag {
		r, ok := rows[tp]
		if !ok {
			r = &PartitionLag{TopicPartition: tp, LogEnd: -1, Lag: -1}
			rows[tp] = r
		}
		return r
	}
	snap, _, err := readSnapshot(ctx, s, paths, group)
	if err != nil {
		return nil, err
	}
	for id, ma := range snap.Members {
		for t, ps := range ma.Topics {
			for _, p := range ps {
				row(TopicPartition{t, p}).AssignedTo = id
			}
		}
	}
	if err := eachPartitionNode(ctx, s, paths.GroupOffsetsRoot(group), func(tp TopicPartition, p string) error {
		o, found, err := FetchOffset(ctx, s, paths, group, tp)
		r := row(tp)
		r.Committed, r.HasOffset = o, found
		return err
	}); err != nil {
		return nil, err
	}
	if err := eachPartitionNode(ctx, s, paths.GroupOwnersRoot(group), func(tp TopicPartition, p string) error {
		data, stat, err := s.Get(ctx, p)
		if err != nil || stat.EphemeralOwner == 0 {
			return ignoreNoNode(err) // a persistent node is a leftover, not an owner
		}
		row(tp).Owner = string(data)
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]PartitionLag, 0, len(rows))
	for _, r := range rows {
		if logEnd != nil {
			if end, err := logEnd(ctx, r.TopicPartition); err == nil {
				r.LogEnd = end
				if r.HasOffset {
					r.Lag = max(0, end-r.Committed.Offset)
				} else {
					r.Lag = end
				}
			}
		}
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b PartitionLag) int { return a.TopicPartition.Compare(b.TopicPartition) })
	return out, nil
}

// eachPartitionNode calls fn for every <dir>/<topic>/<brokerId>-<partition> node.
func eachPartitionNode(ctx context.Context, s *zkrecipes.Session, dir string, fn func(TopicPartition, string) error) error {
	topics, _, err := s.Children(ctx, dir)
	if err != nil {
		return ignoreNoNode(err)
	}
	for _, t := range topics {
		names, _, err := s.Children(ctx, dir+"/"+t)
		if err != nil {
			if ignoreNoNode(err) == nil {
				continue
			}
			return err
		}
		for _, n := range names {
			b, p, perr := ParsePartitionName(n)
			if perr != nil {
				continue
			}
			if err := fn(TopicPartition{t, Partition{b, p}}, dir+"/"+t+"/"+n); err != nil {
				return err
			}
		}
	}
	return nil
}

func ignoreNoNode(err error) error {
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return err
}

// Snapshot is the JSON of the group's assign node.
type Snapshot struct {
	Generation int64      `json:"generation"`
	Leader     string     `json:"leader"`
	Members    Assignment `json:"members"`
}

// readSnapshot reads the assign node; a missing node is an empty snapshot (version -1).
func readSnapshot(ctx context.Context, s *zkrecipes.Session, paths Paths, group string) (Snapshot, int32, error) {
	data, st, err := s.Get(ctx, paths.GroupAssign(group))
	if errors.Is(err, zk.ErrNoNode) {
		return Snapshot{Members: Assignment{}}, -1, nil
	}
	if err != nil {
		return Snapshot{}, 0, err
	}
	var snap Snapshot
	if len(data) > 0 {
		if err := json.Unmarshal(data, &snap); err != nil {
			return Snapshot{}, 0, fmt.Errorf("coordinator: assignment snapshot %s: %w", paths.GroupAssign(group), err)
		}
	}
	if snap.Members == nil {
		snap.Members = Assignment{}
	}
	return snap, st.Version, nil
}

func offsetPath(paths Paths, group string, tp TopicPartition) string {
	return paths.GroupOffset(group, tp.Topic, tp.BrokerID, tp.Partition.Partition)
}
