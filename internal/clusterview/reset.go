package clusterview

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
)

// OffsetChange is one partition of a plan.
type OffsetChange struct {
	Topic     string `json:"topic"`
	Partition string `json:"partition"`
	Current   int64  `json:"current"` // -1: nothing committed
	New       int64  `json:"new"`
	NewMsgID  int64  `json:"new_msg_id"`
	Note      string `json:"note,omitempty"`

	tp      coordinator.TopicPartition
	version int32 // of the offset node when planned; -1 if it did not exist
}

// OffsetPlan is what reset-offsets and import print (-o json: this object).
type OffsetPlan struct {
	Group      string         `json:"group"`
	Executed   bool           `json:"executed"`
	Partitions []OffsetChange `json:"partitions"`
}

// ResetMode says where reset-offsets moves a group's offsets to.
type ResetMode int

// ErrGroupActive is returned when offsets cannot be changed because of live members.
var ErrGroupActive = errors.New("offsets can only be changed while the group has no live member")

// CheckGroupInactive refuses when group has live members: ours (members/),
// MetaQ Java consumers (ids/), or any live owner node.
func CheckGroupInactive(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string) error {
	st, ok, err := ReadGroupState(ctx, s, p, group)
	if err != nil || !ok {
		return err // a group that does not exist yet may get offsets
	}
	if n := len(st.Members); n > 0 {
		ids := make([]string, 0, n)
		for _, m := range st.Members {
			ids = append(ids, m.ID)
		}
		return fmt.Errorf("%w: group %q has %d live member(s) (%s); stop its consumers and retry",
			ErrGroupActive, group, n, strings.Join(ids, ", "))
	}
	owners := p.GroupOwnersRoot(group)
	topics, _, err := s.Children(ctx, owners)
	if errors.Is(err, zkrecipes.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, t := range topics {
		parts, _, err := s.Children(ctx, owners+"/"+t)
		if err != nil && !errors.Is(err, zkrecipes.ErrNoNode) {
			return err
		}
		for _, pn := range parts {
			node := owners + "/" + t + "/" + pn
			kids, stat, err := s.Children(ctx, node)
			if errors.Is(err, zkrecipes.ErrNoNode) {
				continue
			}
			if err != nil {
				return err
			}
			if len(kids) > 0 || stat.EphemeralOwner != 0 {
				return fmt.Errorf("%w: group %q still owns %s/%s (a consumer is shutting down or its session has not expired yet); retry shortly",
					ErrGroupActive, group, t, pn)
			}
		}
	}
	return nil
}

// ResetSpec says which partitions of a group to reset, and to where.
type ResetSpec struct {
	Topics     []string  // the topics to reset; or
	AllTopics  bool      // every topic the group has offsets for
	Partitions []string  // only these, <brokerId>-<partition>; empty: all
	Mode       ResetMode // where to
	ToOffset   int64     // ResetOffset: this byte offset (snapped to a message start)
	ToTime     time.Time // ResetTime: the first message at or after this time
	ShiftBy    int64     // ResetShift: move the committed offset by this many bytes
}

// PlanReset computes the changes of reset-offsets (writes nothing); broker
// requests are bounded by timeout each.
func PlanReset(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string, f ResetSpec, timeout time.Duration) ([]OffsetChange, error) {
	mode := f.Mode
	tps, err := resetTargets(ctx, s, p, group, f)
	if err != nil {
		return nil, err
	}
	probe, err := NewProbe(ctx, s, p, group, timeout)
	if err != nil {
		return nil, err
	}
	defer probe.Close()
	changes := make([]OffsetChange, 0, len(tps))
	for _, tp := range tps {
		c, err := ReadCurrent(ctx, s, p, group, tp)
		if err != nil {
			return nil, err
		}
		switch mode {
		case ResetEarliest:
			c.New, err = probe.Earliest(ctx, tp)
		case ResetLatest:
			c.New, err = probe.End(ctx, tp)
		case ResetOffset:
			c.New, err = probe.Offset(ctx, tp, f.ToOffset)
			if err == nil && c.New != f.ToOffset {
				c.Note = fmt.Sprintf("asked %d: snapped to a message start / the log", f.ToOffset)
			}
		case ResetTime:
			c.New, err = probe.OffsetForTime(ctx, tp, f.ToTime)
		case ResetShift:
			if c.Current < 0 {
				c.New, c.Note = -1, "nothing committed: skipped"
				break
			}
			want := max(c.Current+f.ShiftBy, 0)
			c.New, err = probe.Offset(ctx, tp, want)
			if err == nil && c.New != want {
				c.Note = fmt.Sprintf("%+d gives %d: snapped to a message start / the log", f.ShiftBy, want)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("reset-offsets: %w (use --partition to leave a partition out)", err)
		}
		changes = append(changes, c)
	}
	return changes, nil
}

// resetTargets lists the partitions to reset: subscribable partitions of the
// topics plus those the group has offsets for, narrowed by --partition.
func resetTargets(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string, f ResetSpec) ([]coordinator.TopicPartition, error) {
	topics := f.Topics
	if f.AllTopics {
		var err error
		topics, _, err = s.Children(ctx, p.GroupOffsetsRoot(group))
		if err != nil && !errors.Is(err, zkrecipes.ErrNoNode) {
			return nil, err
		}
		if len(topics) == 0 {
			return nil, fmt.Errorf("reset-offsets: group %q has no committed offsets; name the topics with --topic", group)
		}
	}
	seen := map[coordinator.TopicPartition]bool{}
	for _, t := range topics {
		parts, err := coordinator.SubscribablePartitions(ctx, s, p, t)
		if err != nil {
			return nil, err
		}
		committed, _, err := s.Children(ctx, p.GroupOffsets(group, t))
		if err != nil && !errors.Is(err, zkrecipes.ErrNoNode) {
			return nil, err
		}
		for _, name := range committed {
			if b, pn, err := coordinator.ParsePartitionName(name); err == nil {
				parts = append(parts, coordinator.Partition{BrokerID: b, Partition: pn})
			}
		}
		for _, pt := range parts {
			seen[coordinator.TopicPartition{Topic: t, Partition: pt}] = true
		}
	}
	var out []coordinator.TopicPartition
	for tp := range seen {
		if len(f.Partitions) == 0 || slices.Contains(f.Partitions, tp.Partition.String()) {
			out = append(out, tp)
		}
	}
	for _, pn := range f.Partitions {
		if !slices.ContainsFunc(out, func(tp coordinator.TopicPartition) bool { return tp.Partition.String() == pn }) {
			return nil, fmt.Errorf("reset-offsets: partition %s is neither registered by a broker for %s nor committed by the group", pn, strings.Join(topics, ","))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("reset-offsets: no partitions of %s are registered by a live broker or committed by group %q", strings.Join(topics, ","), group)
	}
	slices.SortFunc(out, coordinator.TopicPartition.Compare)
	return out, nil
}

// ReadCurrent reads the committed offset of tp with the node version.
func ReadCurrent(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string, tp coordinator.TopicPartition) (OffsetChange, error) {
	c := OffsetChange{Topic: tp.Topic, Partition: tp.Partition.String(), Current: -1, NewMsgID: -1, tp: tp, version: -1}
	node := p.GroupOffset(group, tp.Topic, tp.BrokerID, tp.Partition.Partition)
	data, stat, err := s.Get(ctx, node)
	if errors.Is(err, zkrecipes.ErrNoNode) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	o, err := coordinator.ParseOffset(string(data))
	if err != nil {
		c.Note = fmt.Sprintf("current value %q unreadable: will be overwritten", data)
	} else {
		c.Current = o.Offset
	}
	c.version = stat.Version
	return c, nil
}

// ApplyOffsetChanges writes every change whose new offset differs from the
// current one, in one Multi with a version check per existing node.
func ApplyOffsetChanges(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string, changes []OffsetChange) error {
	var ops []any
	for _, c := range changes {
		if c.New < 0 || c.New == c.Current {
			continue
		}
		node := p.GroupOffset(group, c.tp.Topic, c.tp.BrokerID, c.tp.Partition.Partition)
		data := []byte(coordinator.Offset{MsgID: c.NewMsgID, Offset: c.New}.String())
		if c.version >= 0 {
			ops = append(ops, &zk.SetDataRequest{Path: node, Data: data, Version: c.version})
			continue
		}
		if err := s.EnsurePath(ctx, p.GroupOffsets(group, c.tp.Topic)); err != nil {
			return err
		}
		ops = append(ops, &zk.CreateRequest{Path: node, Data: data})
	}
	if len(ops) == 0 {
		return nil
	}
	if err := coordinator.CheckIdentity(ctx, s, p.Group(group)); err != nil {
		return fmt.Errorf("%w; nothing was written", err)
	}
	_, err := s.Multi(ctx, ops...)
	if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists) || errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("offsets changed while the plan was made (did a consumer commit?); nothing was written, run again: %w", err)
	}
	if errors.Is(err, zk.ErrNoAuth) {
		return fmt.Errorf("ZooKeeper refused the write; nothing was written. A secured group's offsets are writable only by "+
			"the group's identity: pass it with --zk-auth-file FILE or METAQ_ZK_AUTH (docs/security-zookeeper.md): %w", err)
	}
	return err
}

const (
	ResetEarliest ResetMode = iota + 1
	ResetLatest
	ResetOffset
	ResetTime
	ResetShift
)

// TopicPartition is the partition the change is for.
func (c OffsetChange) TopicPartition() coordinator.TopicPartition { return c.tp }

// RunOffsetChange is reset-offsets and import: it checks that the group has
// no live member, plans, and with execute writes the plan and checks again
// (a member that joined meanwhile may overwrite the new offsets). Without
// execute a live member is no error: warn gets it and the plan is returned.
func RunOffsetChange(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string, execute bool,
	plan func(context.Context) ([]OffsetChange, error), warn func(error)) (OffsetPlan, error) {
	if err := CheckGroupInactive(ctx, s, p, group); err != nil {
		if execute || !errors.Is(err, ErrGroupActive) {
			return OffsetPlan{}, err
		}
		warn(err)
	}
	changes, err := plan(ctx)
	if err != nil {
		return OffsetPlan{}, err
	}
	out := OffsetPlan{Group: group, Partitions: changes}
	if !execute {
		return out, nil
	}
	if err := ApplyOffsetChanges(ctx, s, p, group, changes); err != nil {
		return OffsetPlan{}, err
	}
	out.Executed = true
	if err := CheckGroupInactive(ctx, s, p, group); err != nil {
		return OffsetPlan{}, fmt.Errorf("offsets were written, but a member joined meanwhile and may overwrite them: %w", err)
	}
	return out, nil
}
