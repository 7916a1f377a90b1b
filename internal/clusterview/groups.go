package clusterview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
)

// GroupMember is one live member of a group, ours or a MetaQ Java consumer.
type GroupMember struct {
	ID         string   `json:"id"`
	Style      string   `json:"style"`
	InstanceID string   `json:"instance_id,omitempty"`
	Host       string   `json:"host,omitempty"`
	PID        int      `json:"pid,omitempty"`
	Topics     []string `json:"topics"`
	Leader     bool     `json:"leader"`
	Partitions int      `json:"partitions"` // assigned in the current snapshot (ours only)
	Node       string   `json:"node"`
}

// GroupState is what ZooKeeper says about a group (no broker is asked).
type GroupState struct {
	Group      string        `json:"group"`
	Style      string        `json:"style"`
	Generation int64         `json:"generation"`
	Leader     string        `json:"leader"`
	Members    []GroupMember `json:"members"`
	Topics     []string      `json:"topics"` // with offsets, or subscribed by a member
}

// ReadGroupState reads members/, ids/, the assign snapshot and offsets/ of group.
func ReadGroupState(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string) (GroupState, bool, error) {
	st := GroupState{Group: group, Members: []GroupMember{}, Topics: []string{}}
	exists, _, err := s.Exists(ctx, p.Group(group))
	if err != nil || !exists {
		return st, false, err
	}
	var snap coordinator.Snapshot
	hasSnap := false
	if data, _, err := s.Get(ctx, p.GroupAssign(group)); err == nil {
		hasSnap = true
		if len(data) > 0 {
			if err := json.Unmarshal(data, &snap); err != nil {
				return st, true, fmt.Errorf("group %s: assignment snapshot %s: %w", group, p.GroupAssign(group), err)
			}
		}
	} else if !errors.Is(err, zkrecipes.ErrNoNode) {
		return st, true, err
	}
	st.Generation, st.Leader = snap.Generation, snap.Leader
	ours, err := readOurMembers(ctx, s, p, group, snap)
	if err != nil {
		return st, true, err
	}
	java, javaDir, err := readJavaMembers(ctx, s, p, group)
	if err != nil {
		return st, true, err
	}
	st.Members = append(ours, java...)
	switch {
	case len(ours) > 0 && len(java) > 0:
		st.Style = StyleMixed
	case len(ours) > 0 || (len(java) == 0 && hasSnap):
		st.Style = StyleOurs
	case len(java) > 0 || javaDir:
		st.Style = StyleJava
	default:
		st.Style = StyleUnknown
	}
	topics, _, err := s.Children(ctx, p.GroupOffsetsRoot(group))
	if err != nil && !errors.Is(err, zkrecipes.ErrNoNode) {
		return st, true, err
	}
	for _, m := range st.Members {
		topics = append(topics, m.Topics...)
	}
	slices.Sort(topics)
	st.Topics = append(st.Topics, slices.Compact(topics)...)
	return st, true, nil
}

func readOurMembers(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string, snap coordinator.Snapshot) ([]GroupMember, error) {
	dir := p.GroupMembers(group)
	kids, _, err := s.Children(ctx, dir)
	if errors.Is(err, zkrecipes.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	zkrecipes.SortBySequence(kids)
	var out []GroupMember
	for _, k := range kids {
		data, _, err := s.Get(ctx, dir+"/"+k)
		if errors.Is(err, zkrecipes.ErrNoNode) {
			continue // left meanwhile
		}
		if err != nil {
			return nil, err
		}
		var info struct {
			ID         string   `json:"id"`
			InstanceID string   `json:"instanceId"`
			Topics     []string `json:"topics"`
			Host       string   `json:"host"`
			PID        int      `json:"pid"`
		}
		if json.Unmarshal(data, &info) != nil {
			info.ID = k + " (unreadable data)"
		}
		m := GroupMember{ID: info.ID, Style: StyleOurs, InstanceID: info.InstanceID, Host: info.Host, PID: info.PID,
			Topics: info.Topics, Leader: info.ID == snap.Leader, Node: dir + "/" + k}
		if m.Topics == nil {
			m.Topics = []string{}
		}
		if ma, ok := snap.Members[info.ID]; ok {
			m.Partitions = ma.Count()
		}
		out = append(out, m)
	}
	return out, nil
}

// readJavaMembers reads ids/<group>_<consumerId> (data: comma-joined topics);
// dir reports whether ids/ exists at all.
func readJavaMembers(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string) (out []GroupMember, dir bool, err error) {
	d := p.GroupMetaQIDs(group)
	kids, _, err := s.Children(ctx, d)
	if errors.Is(err, zkrecipes.ErrNoNode) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	slices.Sort(kids)
	for _, k := range kids {
		data, _, err := s.Get(ctx, d+"/"+k)
		if errors.Is(err, zkrecipes.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, true, err
		}
		m := GroupMember{ID: strings.TrimPrefix(k, group+"_"), Style: StyleJava, Topics: []string{}, Node: d + "/" + k}
		for _, t := range strings.Split(string(data), ",") {
			if t = strings.TrimSpace(t); t != "" {
				m.Topics = append(m.Topics, t)
			}
		}
		out = append(out, m)
	}
	return out, true, nil
}

// GroupListRow is one line of `metaq groups list`.
type GroupListRow struct {
	Group      string   `json:"group"`
	Style      string   `json:"style"`
	Members    int      `json:"members"`
	Generation int64    `json:"generation"`
	Topics     []string `json:"topics"`
}

// ListGroups reads every group under consumers/ with its members and topics.
func ListGroups(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) ([]GroupListRow, error) {
	names, _, err := s.Children(ctx, p.Consumers())
	if err != nil && !errors.Is(err, zkrecipes.ErrNoNode) {
		return nil, fmt.Errorf("list %s: %w", p.Consumers(), err)
	}
	slices.Sort(names)
	rows := []GroupListRow{}
	for _, name := range names {
		st, ok, err := ReadGroupState(ctx, s, p, name)
		if err != nil {
			return nil, err
		}
		if ok {
			rows = append(rows, GroupListRow{Group: name, Style: st.Style, Members: len(st.Members),
				Generation: st.Generation, Topics: st.Topics})
		}
	}
	return rows, nil
}

// GroupPartition is one partition of `metaq groups describe` (its -o json
// output is a list of these).
type GroupPartition struct {
	Topic          string `json:"topic"`
	Partition      string `json:"partition"` // <brokerId>-<partition>
	Committed      int64  `json:"committed"` // -1: nothing committed
	CommittedMsgID int64  `json:"committed_msg_id"`
	LogEnd         int64  `json:"log_end"` // -1: unknown (broker down)
	Lag            int64  `json:"lag"`     // log_end - committed (log_end when nothing is committed); -1 unknown
	Owner          string `json:"owner"`   // member consuming it now, "" if none
	AssignedTo     string `json:"assigned_to,omitempty"`
	Error          string `json:"error,omitempty"`
}

// ErrNoGroup says a group does not exist.
func ErrNoGroup(p coordinator.Paths, group string) error {
	return fmt.Errorf("consumer group %q does not exist (no %s; `metaq groups list` shows the groups)", group, p.Group(group))
}

// DescribeGroup reads a group's state and, per partition it has an offset,
// owner or assignment for, the committed offset, the log end (asked from the
// partition's broker within timeout) and the lag: `metaq groups describe`.
func DescribeGroup(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string, timeout time.Duration) (GroupState, []GroupPartition, error) {
	st, ok, err := ReadGroupState(ctx, s, p, group)
	if err != nil {
		return st, nil, err
	}
	if !ok {
		return st, nil, ErrNoGroup(p, group)
	}
	probe, err := NewProbe(ctx, s, p, group, timeout)
	if err != nil {
		return st, nil, err
	}
	defer probe.Close()
	rows, err := GroupPartitions(ctx, s, p, st, probe.End)
	return st, rows, err
}

// LogEnd returns the log end of a partition (for GroupPartitions).
type LogEnd func(context.Context, coordinator.TopicPartition) (int64, error)

// GroupPartitions computes the partition rows of a group whose state was
// read with ReadGroupState, taking log ends from end: Probe.End asks the
// brokers one partition at a time, a caller that already holds every
// broker's `stats offsets` can answer from those.
func GroupPartitions(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, st GroupState, end LogEnd) ([]GroupPartition, error) {
	group := st.Group
	endErr := map[coordinator.TopicPartition]error{}
	lags, err := coordinator.GroupLag(ctx, s, p, group, func(ctx context.Context, tp coordinator.TopicPartition) (int64, error) {
		end, err := end(ctx, tp)
		if err != nil {
			endErr[tp] = err
		}
		return end, err
	})
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for _, m := range st.Members {
		live[m.ID] = true
	}
	rows := make([]GroupPartition, 0, len(lags))
	for _, l := range lags {
		if !live[l.AssignedTo] {
			l.AssignedTo = "" // the last assignment of a member that has left
		}
		r := GroupPartition{Topic: l.Topic, Partition: l.Partition.String(), Committed: -1, CommittedMsgID: -1,
			LogEnd: l.LogEnd, Lag: l.Lag, Owner: l.Owner, AssignedTo: l.AssignedTo}
		if l.HasOffset {
			r.Committed, r.CommittedMsgID = l.Committed.Offset, l.Committed.MsgID
		}
		if e := endErr[l.TopicPartition]; e != nil {
			r.Error = e.Error()
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// Group styles: who registers in a group. Ours use members/ (REBALANCE.md),
// MetaQ Java consumers ids/ (PROTOCOL.md §10).
const (
	StyleOurs    = "metaq-go"
	StyleJava    = "metaq-java"
	StyleMixed   = "mixed"
	StyleUnknown = "unknown" // no member now and nothing telling whose offsets these are
)
