package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
)

// Group styles: who registers in a group. Ours use members/ (REBALANCE.md),
// MetaQ Java consumers ids/ (PROTOCOL.md §10).
const (
	styleOurs    = "metaq-go"
	styleJava    = "metaq-java"
	styleMixed   = "mixed"
	styleUnknown = "unknown" // no member now and nothing telling whose offsets these are
)

func newGroupsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "groups",
		Short: "consumer groups: list, describe (members, offsets, lag), reset, export and import offsets",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("groups: missing subcommand: list, describe, reset-offsets, export or import")}
		},
	}
	cmd.AddCommand(newGroupsListCmd(g), newGroupsDescribeCmd(g), newGroupsResetCmd(g),
		newGroupsExportCmd(g), newGroupsImportCmd(g))
	return cmd
}

// groupMember is one live member of a group, ours or a MetaQ Java consumer.
type groupMember struct {
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

// groupState is what ZooKeeper says about a group (no broker is asked).
type groupState struct {
	Group      string        `json:"group"`
	Style      string        `json:"style"`
	Generation int64         `json:"generation"`
	Leader     string        `json:"leader"`
	Members    []groupMember `json:"members"`
	Topics     []string      `json:"topics"` // with offsets, or subscribed by a member
}

// readGroupState reads members/, ids/, the assign snapshot and offsets/ of group.
func readGroupState(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string) (groupState, bool, error) {
	st := groupState{Group: group, Members: []groupMember{}, Topics: []string{}}
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
		st.Style = styleMixed
	case len(ours) > 0 || (len(java) == 0 && hasSnap):
		st.Style = styleOurs
	case len(java) > 0 || javaDir:
		st.Style = styleJava
	default:
		st.Style = styleUnknown
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

func readOurMembers(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string, snap coordinator.Snapshot) ([]groupMember, error) {
	dir := p.GroupMembers(group)
	kids, _, err := s.Children(ctx, dir)
	if errors.Is(err, zkrecipes.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	zkrecipes.SortBySequence(kids)
	var out []groupMember
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
		m := groupMember{ID: info.ID, Style: styleOurs, InstanceID: info.InstanceID, Host: info.Host, PID: info.PID,
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
func readJavaMembers(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string) (out []groupMember, dir bool, err error) {
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
		m := groupMember{ID: strings.TrimPrefix(k, group+"_"), Style: styleJava, Topics: []string{}, Node: d + "/" + k}
		for _, t := range strings.Split(string(data), ",") {
			if t = strings.TrimSpace(t); t != "" {
				m.Topics = append(m.Topics, t)
			}
		}
		out = append(out, m)
	}
	return out, true, nil
}

// groupListRow is one line of `metaq groups list`.
type groupListRow struct {
	Group      string   `json:"group"`
	Style      string   `json:"style"`
	Members    int      `json:"members"`
	Generation int64    `json:"generation"`
	Topics     []string `json:"topics"`
}

func newGroupsListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "consumer groups under consumers/ with their style (metaq-go or metaq-java), live members and topics",
		Example: "  metaq groups list --zk 127.0.0.1:2181\n  metaq groups list --zk 127.0.0.1:2181 -o json",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			rows, err := withZK(cmd.Context(), g, 1, listGroups)
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), g, rows, "no consumer groups under "+g.paths().Consumers(), printGroupList)
		},
	}
}

func printGroupList(w io.Writer, rows []groupListRow) error {
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = []string{r.Group, r.Style, strconv.Itoa(r.Members), strconv.FormatInt(r.Generation, 10), orDash(strings.Join(r.Topics, ","))}
	}
	return printTable(w, []string{"GROUP", "STYLE", "MEMBERS", "GENERATION", "TOPICS"}, out)
}

// listGroups reads every group under consumers/ with its members and topics.
func listGroups(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) ([]groupListRow, error) {
	names, _, err := s.Children(ctx, p.Consumers())
	if err != nil && !errors.Is(err, zkrecipes.ErrNoNode) {
		return nil, fmt.Errorf("list %s: %w", p.Consumers(), err)
	}
	slices.Sort(names)
	rows := []groupListRow{}
	for _, name := range names {
		st, ok, err := readGroupState(ctx, s, p, name)
		if err != nil {
			return nil, err
		}
		if ok {
			rows = append(rows, groupListRow{Group: name, Style: st.Style, Members: len(st.Members),
				Generation: st.Generation, Topics: st.Topics})
		}
	}
	return rows, nil
}

// groupPartitionRow is one partition of `metaq groups describe` (its -o json
// output is a list of these).
type groupPartitionRow struct {
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

type describeFlags struct {
	members bool
}

func newGroupsDescribeCmd(g *globals) *cobra.Command {
	var f describeFlags
	cmd := &cobra.Command{
		Use:   "describe GROUP",
		Short: "a group's members, leader and generation, and per partition: committed offset, log end, lag and owner",
		Long: `describe prints the group's members (id, host, topics), its leader and generation, then one
line per partition the group has an offset, an owner or an assignment for: committed offset,
log end (asked from the partition's broker), lag = log end - committed, and owner.
With -o json it prints the partitions as a JSON list; with --members, the members instead.`,
		Example: "  metaq groups describe g1 --zk 127.0.0.1:2181\n  metaq groups describe g1 --zk 127.0.0.1:2181 -o json\n  metaq groups describe g1 --zk 127.0.0.1:2181 --members -o json",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runZK(cmd.Context(), g, 3, func(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) error {
				st, rows, err := describeGroup(ctx, g, s, p, args[0])
				if err != nil {
					return err
				}
				return printGroupDescription(cmd.OutOrStdout(), g.output() == "json", f.members, st, rows)
			})
		},
	}
	cmd.Flags().BoolVar(&f.members, "members", false, "print only the members (with -o json: a JSON list of members)")
	return cmd
}

// errNoGroup says a group does not exist.
func errNoGroup(p coordinator.Paths, group string) error {
	return fmt.Errorf("consumer group %q does not exist (no %s; `metaq groups list` shows the groups)", group, p.Group(group))
}

func describeGroup(ctx context.Context, g *globals, s *zkrecipes.Session, p coordinator.Paths, group string) (groupState, []groupPartitionRow, error) {
	st, ok, err := readGroupState(ctx, s, p, group)
	if err != nil {
		return st, nil, err
	}
	if !ok {
		return st, nil, errNoGroup(p, group)
	}
	probe, err := newPartitionProbe(ctx, g, s, p, group)
	if err != nil {
		return st, nil, err
	}
	defer probe.close()
	endErr := map[coordinator.TopicPartition]error{}
	lags, err := coordinator.GroupLag(ctx, s, p, group, func(ctx context.Context, tp coordinator.TopicPartition) (int64, error) {
		end, err := probe.end(ctx, tp)
		if err != nil {
			endErr[tp] = err
		}
		return end, err
	})
	if err != nil {
		return st, nil, err
	}
	live := map[string]bool{}
	for _, m := range st.Members {
		live[m.ID] = true
	}
	rows := make([]groupPartitionRow, 0, len(lags))
	for _, l := range lags {
		if !live[l.AssignedTo] {
			l.AssignedTo = "" // the last assignment of a member that has left
		}
		r := groupPartitionRow{Topic: l.Topic, Partition: l.Partition.String(), Committed: -1, CommittedMsgID: -1,
			LogEnd: l.LogEnd, Lag: l.Lag, Owner: l.Owner, AssignedTo: l.AssignedTo}
		if l.HasOffset {
			r.Committed, r.CommittedMsgID = l.Committed.Offset, l.Committed.MsgID
		}
		if e := endErr[l.TopicPartition]; e != nil {
			r.Error = e.Error()
		}
		rows = append(rows, r)
	}
	return st, rows, nil
}

func printGroupDescription(w io.Writer, asJSON, membersOnly bool, st groupState, rows []groupPartitionRow) error {
	switch {
	case asJSON && membersOnly:
		return printJSON(w, st.Members)
	case asJSON:
		return printJSON(w, rows)
	}
	leader := orDash(st.Leader)
	if !slices.ContainsFunc(st.Members, func(m groupMember) bool { return m.Leader }) && st.Leader != "" {
		leader = "- (last: " + st.Leader + ")"
	}
	fmt.Fprintf(w, "Group:      %s (%s)\nGeneration: %d\nLeader:     %s\n\n", st.Group, st.Style, st.Generation, leader)
	if len(st.Members) == 0 {
		fmt.Fprintln(w, "No live members.")
	} else {
		mrows := make([][]string, len(st.Members))
		for i, m := range st.Members {
			id := m.ID
			if m.Leader {
				id += " *"
			}
			mrows[i] = []string{id, m.Style, orDash(m.Host), orDash(strings.Join(m.Topics, ",")), strconv.Itoa(m.Partitions)}
		}
		if err := printTable(w, []string{"MEMBER (* leader)", "STYLE", "HOST", "TOPICS", "PARTITIONS"}, mrows); err != nil {
			return err
		}
	}
	if membersOnly {
		return nil
	}
	fmt.Fprintln(w)
	if len(rows) == 0 {
		fmt.Fprintln(w, "No committed offsets, owners or assignments yet.")
		return nil
	}
	out := make([][]string, len(rows))
	var total int64
	known := true
	for i, r := range rows {
		out[i] = []string{r.Topic, r.Partition, formatOffset(r.Committed), formatOffset(r.LogEnd), formatOffset(r.Lag), orDash(r.Owner), orDash(r.Error)}
		if r.Lag < 0 {
			known = false
		}
		total += max(r.Lag, 0)
	}
	if err := printTable(w, []string{"TOPIC", "PARTITION", "COMMITTED", "LOG_END", "LAG", "OWNER", "ERROR"}, out); err != nil {
		return err
	}
	if known {
		fmt.Fprintf(w, "\nTotal lag: %d bytes\n", total)
	} else {
		fmt.Fprintf(w, "\nTotal lag: at least %d bytes (some log ends unknown)\n", total)
	}
	return nil
}
