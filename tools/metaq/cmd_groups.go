package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/clusterview"
	"github.com/metaq-go/metaq/zkrecipes"
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

func newGroupsListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "consumer groups under consumers/ with their style (metaq-go or metaq-java), live members and topics",
		Example: "  metaq groups list --zk 127.0.0.1:2181\n  metaq groups list --zk 127.0.0.1:2181 -o json",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			rows, err := withZK(cmd.Context(), g, 1, clusterview.ListGroups)
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), g, rows, "no consumer groups under "+g.paths().Consumers(), printGroupList)
		},
	}
}

func printGroupList(w io.Writer, rows []clusterview.GroupListRow) error {
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = []string{r.Group, r.Style, strconv.Itoa(r.Members), strconv.FormatInt(r.Generation, 10), orDash(strings.Join(r.Topics, ","))}
	}
	return printTable(w, []string{"GROUP", "STYLE", "MEMBERS", "GENERATION", "TOPICS"}, out)
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
				st, rows, err := clusterview.DescribeGroup(ctx, s, p, args[0], g.timeout())
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

func printGroupDescription(w io.Writer, asJSON, membersOnly bool, st clusterview.GroupState, rows []clusterview.GroupPartition) error {
	switch {
	case asJSON && membersOnly:
		return printJSON(w, st.Members)
	case asJSON:
		return printJSON(w, rows)
	}
	leader := orDash(st.Leader)
	if !slices.ContainsFunc(st.Members, func(m clusterview.GroupMember) bool { return m.Leader }) && st.Leader != "" {
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
		out[i] = []string{r.Topic, r.Partition, clusterview.FormatOffset(r.Committed), clusterview.FormatOffset(r.LogEnd), clusterview.FormatOffset(r.Lag), orDash(r.Owner), orDash(r.Error)}
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
