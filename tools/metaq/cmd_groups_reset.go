package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/clusterview"
	"github.com/metaq-go/metaq/zkrecipes"
)

// Offset changes (reset-offsets, import) are planned, printed, and written
// only with --execute, and only while the group has no live member: a live
// member keeps its position in memory and would overwrite a reset with its
// next commit (Kafka's kafka-consumer-groups refuses the same way). The
// write is one ZooKeeper Multi, a compare-and-set on every offset node read
// while planning, so a commit that slips in between aborts the whole write;
// a member that joins during the write is reported afterwards.

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
			spec, err := f.spec(cmd)
			if err != nil {
				return err
			}
			return runOffsetChange(cmd, g, args[0], f.execute, func(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) ([]clusterview.OffsetChange, error) {
				return clusterview.PlanReset(ctx, s, p, args[0], spec, g.timeout())
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

// spec checks the flags and turns them into what to reset.
func (f *resetFlags) spec(cmd *cobra.Command) (clusterview.ResetSpec, error) {
	spec := clusterview.ResetSpec{Topics: f.topics, AllTopics: f.allTopics, Partitions: f.partitions, ToOffset: f.toOffset, ShiftBy: f.shiftBy}
	var modes []clusterview.ResetMode
	if f.earliest {
		modes = append(modes, clusterview.ResetEarliest)
	}
	if f.latest {
		modes = append(modes, clusterview.ResetLatest)
	}
	if cmd.Flags().Changed("to-offset") {
		modes = append(modes, clusterview.ResetOffset)
	}
	if f.toTime != "" {
		modes = append(modes, clusterview.ResetTime)
	}
	if cmd.Flags().Changed("shift-by") {
		modes = append(modes, clusterview.ResetShift)
	}
	if len(modes) != 1 {
		return spec, usageError{errors.New("reset-offsets: give exactly one of --to-earliest, --to-latest, --to-offset, --to-time, --shift-by")}
	}
	if len(f.topics) == 0 && !f.allTopics || len(f.topics) > 0 && f.allTopics {
		return spec, usageError{errors.New("reset-offsets: give --topic T (repeatable) or --all-topics")}
	}
	if modes[0] == clusterview.ResetOffset && f.toOffset < 0 {
		return spec, usageError{fmt.Errorf("reset-offsets: --to-offset %d: offsets are not negative", f.toOffset)}
	}
	if modes[0] == clusterview.ResetTime {
		at, err := time.Parse(time.RFC3339, f.toTime)
		if err != nil {
			return spec, usageError{fmt.Errorf("reset-offsets: --to-time %q: want RFC3339, e.g. 2024-05-01T12:00:00Z", f.toTime)}
		}
		spec.ToTime = at
	}
	for _, pn := range f.partitions {
		if _, _, err := coordinator.ParsePartitionName(pn); err != nil {
			return spec, usageError{fmt.Errorf("reset-offsets: --partition %q: want <brokerId>-<partition>, e.g. 0-1", pn)}
		}
	}
	spec.Mode = modes[0]
	return spec, nil
}

// runOffsetChange connects, plans, prints, and with execute writes the plan
// (clusterview.RunOffsetChange).
func runOffsetChange(cmd *cobra.Command, g *globals, group string, execute bool,
	plan func(context.Context, *zkrecipes.Session, coordinator.Paths) ([]clusterview.OffsetChange, error)) error {
	out, err := withZK(cmd.Context(), g, 5, func(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) (clusterview.OffsetPlan, error) {
		return clusterview.RunOffsetChange(ctx, s, p, group, execute, func(ctx context.Context) ([]clusterview.OffsetChange, error) {
			return plan(ctx, s, p)
		}, func(err error) {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n(--execute will be refused until then)\n", err)
		})
	})
	if err != nil {
		return err
	}
	return printOffsetPlan(cmd.OutOrStdout(), g.output() == "json", out)
}

func printOffsetPlan(w io.Writer, asJSON bool, pl clusterview.OffsetPlan) error {
	if asJSON {
		return printJSON(w, pl)
	}
	rows := make([][]string, len(pl.Partitions))
	for i, c := range pl.Partitions {
		change := fmt.Sprintf("%s -> %s", clusterview.FormatOffset(c.Current), clusterview.FormatOffset(c.New))
		switch {
		case c.New < 0:
		case c.Current < 0:
			change += " (new)"
		case c.New == c.Current:
			change += " (unchanged)"
		default:
			change += fmt.Sprintf(" (%+d)", c.New-c.Current)
		}
		rows[i] = []string{c.Topic, c.Partition, clusterview.FormatOffset(c.Current), clusterview.FormatOffset(c.New), change, orDash(c.Note)}
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
