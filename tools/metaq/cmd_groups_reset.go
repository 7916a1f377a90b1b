package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
)

// Offset changes (reset-offsets, import) are planned, printed, and written
// only with --execute, and only while the group has no live member: a live
// member keeps its position in memory and would overwrite a reset with its
// next commit (Kafka's kafka-consumer-groups refuses the same way). The
// write is one ZooKeeper Multi, a compare-and-set on every offset node read
// while planning, so a commit that slips in between aborts the whole write;
// a member that joins during the write is reported afterwards.

// offsetChange is one partition of a plan.
type offsetChange struct {
	Topic     string `json:"topic"`
	Partition string `json:"partition"`
	Current   int64  `json:"current"` // -1: nothing committed
	New       int64  `json:"new"`
	NewMsgID  int64  `json:"new_msg_id"`
	Note      string `json:"note,omitempty"`

	tp      coordinator.TopicPartition
	version int32 // of the offset node when planned; -1 if it did not exist
}

// offsetPlan is what reset-offsets and import print (-o json: this object).
type offsetPlan struct {
	Group      string         `json:"group"`
	Executed   bool           `json:"executed"`
	Partitions []offsetChange `json:"partitions"`
}

type resetFlags struct {
	topics     []string
	allTopics  bool
	partitions []string
	earliest   bool
	latest     bool
	toOffset   int64
	toTime     string
	shiftBy    int64
	execute    bool
}

func newGroupsResetCmd(g *globals) *cobra.Command {
	var f resetFlags
	cmd := &cobra.Command{
		Use:   "reset-offsets GROUP (--topic T... | --all-topics) (--to-earliest | --to-latest | --to-offset N | --to-time RFC3339 | --shift-by N) [--execute]",
		Short: "move a group's committed offsets; a dry run unless --execute; refused while the group has live members",
		Long: `reset-offsets computes new committed offsets for the partitions of the given topics (every
partition brokers register for subscribing plus every partition the group has an offset for; narrow
with --partition <brokerId>-<partition>) and prints current -> new. Nothing is written without
--execute. It is refused while the group has live members (ours or MetaQ Java consumers): stop the
consumers first. Offsets are byte positions; every new offset is snapped to a message start by the
partition's broker. --to-time finds the first message at or after the time by binary search over
the log, using the time in message ids (millisecond precision). Offsets are written MetaQ-compatibly
("-1-<offset>": msgId unknown).`,
		Example: `  metaq groups reset-offsets g1 --zk 127.0.0.1:2181 --topic test --to-earliest
  metaq groups reset-offsets g1 --zk 127.0.0.1:2181 --topic test --to-earliest --execute
  metaq groups reset-offsets g1 --zk 127.0.0.1:2181 --topic test --partition 0-1 --shift-by -1000 --execute
  metaq groups reset-offsets g1 --zk 127.0.0.1:2181 --all-topics --to-time 2024-05-01T12:00:00Z`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			mode, err := f.mode(cmd)
			if err != nil {
				return err
			}
			return runOffsetChange(cmd, g, args[0], f.execute, func(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) ([]offsetChange, error) {
				return planReset(ctx, g, s, p, args[0], f, mode)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.topics, "topic", nil, "topic(s) to reset (repeat or comma-separate)")
	fl.BoolVar(&f.allTopics, "all-topics", false, "every topic the group has offsets for")
	fl.StringSliceVar(&f.partitions, "partition", nil, "only these partitions, <brokerId>-<partition> (repeatable)")
	fl.BoolVar(&f.earliest, "to-earliest", false, "to the first offset still on the brokers")
	fl.BoolVar(&f.latest, "to-latest", false, "to the log end (skip the backlog)")
	fl.Int64Var(&f.toOffset, "to-offset", 0, "to this byte offset (snapped to a message start, clamped to the log)")
	fl.StringVar(&f.toTime, "to-time", "", "to the first message at or after this time, RFC3339 (e.g. 2024-05-01T12:00:00Z)")
	fl.Int64Var(&f.shiftBy, "shift-by", 0, "move the committed offset by this many bytes (negative: back), snapped to a message start")
	fl.BoolVar(&f.execute, "execute", false, "write the new offsets (default: dry run, print only)")
	return cmd
}

type resetMode int

const (
	resetEarliest resetMode = iota + 1
	resetLatest
	resetOffset
	resetTime
	resetShift
)

func (f *resetFlags) mode(cmd *cobra.Command) (resetMode, error) {
	var modes []resetMode
	if f.earliest {
		modes = append(modes, resetEarliest)
	}
	if f.latest {
		modes = append(modes, resetLatest)
	}
	if cmd.Flags().Changed("to-offset") {
		modes = append(modes, resetOffset)
	}
	if f.toTime != "" {
		modes = append(modes, resetTime)
	}
	if cmd.Flags().Changed("shift-by") {
		modes = append(modes, resetShift)
	}
	if len(modes) != 1 {
		return 0, usageError{errors.New("reset-offsets: give exactly one of --to-earliest, --to-latest, --to-offset, --to-time, --shift-by")}
	}
	if len(f.topics) == 0 && !f.allTopics || len(f.topics) > 0 && f.allTopics {
		return 0, usageError{errors.New("reset-offsets: give --topic T (repeatable) or --all-topics")}
	}
	if modes[0] == resetOffset && f.toOffset < 0 {
		return 0, usageError{fmt.Errorf("reset-offsets: --to-offset %d: offsets are not negative", f.toOffset)}
	}
	if modes[0] == resetTime {
		if _, err := time.Parse(time.RFC3339, f.toTime); err != nil {
			return 0, usageError{fmt.Errorf("reset-offsets: --to-time %q: want RFC3339, e.g. 2024-05-01T12:00:00Z", f.toTime)}
		}
	}
	for _, pn := range f.partitions {
		if _, _, err := coordinator.ParsePartitionName(pn); err != nil {
			return 0, usageError{fmt.Errorf("reset-offsets: --partition %q: want <brokerId>-<partition>, e.g. 0-1", pn)}
		}
	}
	return modes[0], nil
}

// runOffsetChange connects, plans, prints, and with execute writes the plan.
func runOffsetChange(cmd *cobra.Command, g *globals, group string, execute bool,
	plan func(context.Context, *zkrecipes.Session, coordinator.Paths) ([]offsetChange, error)) error {
	out, err := withZK(cmd.Context(), g, 5, func(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) (offsetPlan, error) {
		if err := checkGroupInactive(ctx, s, p, group); err != nil {
			if execute || !errors.Is(err, errGroupActive) {
				return offsetPlan{}, err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n(--execute will be refused until then)\n", err)
		}
		changes, err := plan(ctx, s, p)
		if err != nil {
			return offsetPlan{}, err
		}
		out := offsetPlan{Group: group, Partitions: changes}
		if execute {
			if err := applyOffsetChanges(ctx, s, p, group, changes); err != nil {
				return offsetPlan{}, err
			}
			out.Executed = true
			if err := checkGroupInactive(ctx, s, p, group); err != nil {
				return offsetPlan{}, fmt.Errorf("offsets were written, but a member joined meanwhile and may overwrite them: %w", err)
			}
		}
		return out, nil
	})
	if err != nil {
		return err
	}
	return printOffsetPlan(cmd.OutOrStdout(), g.output() == "json", out)
}

// errGroupActive is returned when offsets cannot be changed because of live members.
var errGroupActive = errors.New("offsets can only be changed while the group has no live member")

// checkGroupInactive refuses when group has live members: ours (members/),
// MetaQ Java consumers (ids/), or any live owner node.
func checkGroupInactive(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string) error {
	st, ok, err := readGroupState(ctx, s, p, group)
	if err != nil || !ok {
		return err // a group that does not exist yet may get offsets
	}
	if n := len(st.Members); n > 0 {
		ids := make([]string, 0, n)
		for _, m := range st.Members {
			ids = append(ids, m.ID)
		}
		return fmt.Errorf("%w: group %q has %d live member(s) (%s); stop its consumers and retry",
			errGroupActive, group, n, strings.Join(ids, ", "))
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
					errGroupActive, group, t, pn)
			}
		}
	}
	return nil
}

// planReset computes the changes of reset-offsets.
func planReset(ctx context.Context, g *globals, s *zkrecipes.Session, p coordinator.Paths, group string, f resetFlags, mode resetMode) ([]offsetChange, error) {
	tps, err := resetTargets(ctx, s, p, group, f)
	if err != nil {
		return nil, err
	}
	probe, err := newPartitionProbe(ctx, g, s, p, group)
	if err != nil {
		return nil, err
	}
	defer probe.close()
	var at time.Time
	if mode == resetTime {
		at, _ = time.Parse(time.RFC3339, f.toTime)
	}
	changes := make([]offsetChange, 0, len(tps))
	for _, tp := range tps {
		c, err := readCurrent(ctx, s, p, group, tp)
		if err != nil {
			return nil, err
		}
		switch mode {
		case resetEarliest:
			c.New, err = probe.earliest(ctx, tp)
		case resetLatest:
			c.New, err = probe.end(ctx, tp)
		case resetOffset:
			c.New, err = probe.offset(ctx, tp, f.toOffset)
			if err == nil && c.New != f.toOffset {
				c.Note = fmt.Sprintf("asked %d: snapped to a message start / the log", f.toOffset)
			}
		case resetTime:
			c.New, err = probe.offsetForTime(ctx, tp, at)
		case resetShift:
			if c.Current < 0 {
				c.New, c.Note = -1, "nothing committed: skipped"
				break
			}
			want := max(c.Current+f.shiftBy, 0)
			c.New, err = probe.offset(ctx, tp, want)
			if err == nil && c.New != want {
				c.Note = fmt.Sprintf("%+d gives %d: snapped to a message start / the log", f.shiftBy, want)
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
func resetTargets(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string, f resetFlags) ([]coordinator.TopicPartition, error) {
	topics := f.topics
	if f.allTopics {
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
		if len(f.partitions) == 0 || slices.Contains(f.partitions, tp.Partition.String()) {
			out = append(out, tp)
		}
	}
	for _, pn := range f.partitions {
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

// readCurrent reads the committed offset of tp with the node version.
func readCurrent(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string, tp coordinator.TopicPartition) (offsetChange, error) {
	c := offsetChange{Topic: tp.Topic, Partition: tp.Partition.String(), Current: -1, NewMsgID: -1, tp: tp, version: -1}
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

// applyOffsetChanges writes every change whose new offset differs from the
// current one, in one Multi with a version check per existing node.
func applyOffsetChanges(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string, changes []offsetChange) error {
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

func printOffsetPlan(w io.Writer, asJSON bool, pl offsetPlan) error {
	if asJSON {
		return printJSON(w, pl)
	}
	rows := make([][]string, len(pl.Partitions))
	for i, c := range pl.Partitions {
		change := fmt.Sprintf("%s -> %s", formatOffset(c.Current), formatOffset(c.New))
		switch {
		case c.New < 0:
		case c.Current < 0:
			change += " (new)"
		case c.New == c.Current:
			change += " (unchanged)"
		default:
			change += fmt.Sprintf(" (%+d)", c.New-c.Current)
		}
		rows[i] = []string{c.Topic, c.Partition, formatOffset(c.Current), formatOffset(c.New), change, orDash(c.Note)}
	}
	if err := printTable(w, []string{"TOPIC", "PARTITION", "CURRENT", "NEW", "CHANGE", "NOTE"}, rows); err != nil {
		return err
	}
	if pl.Executed {
		n := 0
		for _, c := range pl.Partitions {
			if c.New >= 0 && c.New != c.Current {
				n++
			}
		}
		_, err := fmt.Fprintf(w, "\n%d offset(s) of group %s written (unchanged ones left alone).\n", n, pl.Group)
		return err
	}
	_, err := fmt.Fprintf(w, "\nDry run: nothing written. Add --execute to apply.\n")
	return err
}
