package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/clusterview"
	"github.com/metaq-go/metaq/zkrecipes"
)

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "cluster",
		Short:   "overview: ZooKeeper status, registered brokers with their URIs and topic counts, masters and slaves",
		Example: "  metaq cluster --zk 127.0.0.1:2181\n  metaq cluster --zk zk1:2181,zk2:2181 -o json",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := clusterOverview(cmd.Context(), g)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if g.output() == "json" {
				return printJSON(w, rep)
			}
			return printCluster(w, rep)
		},
	}
	cmd.AddCommand(newClusterPromoteCmd(g))
	return cmd
}

func clusterOverview(ctx context.Context, g *globals) (clusterview.ClusterReport, error) {
	return withZK(ctx, g, 1, func(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) (clusterview.ClusterReport, error) {
		return clusterview.ReadCluster(ctx, g.zkServers(), s, p)
	})
}

func printCluster(w io.Writer, rep clusterview.ClusterReport) error {
	z := rep.ZooKeeper
	fmt.Fprintf(w, "ZooKeeper: %s (%s, session %s, timeout %s)\n", strings.Join(z.Servers, ","), z.State, z.SessionID, z.Timeout)
	fmt.Fprintf(w, "Root:      %s\n", z.Root)
	fmt.Fprintf(w, "Brokers:   %d\n", len(rep.Brokers))
	fmt.Fprintf(w, "Topics:    %d\n\n", rep.Topics)
	rows := make([][]string, 0, len(rep.Brokers))
	for _, b := range rep.Brokers {
		topics := "-"
		if b.Topics >= 0 {
			topics = strconv.Itoa(b.Topics)
		}
		rows = append(rows, []string{strconv.Itoa(b.ID), orDash(b.URI), b.Status, topics, orDash(b.Error)})
	}
	if err := printTable(w, []string{"ID", "URI", "STATUS", "TOPICS", "ERROR"}, rows); err != nil {
		return err
	}
	return printReplication(w, rep.Replication)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newBrokersCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "brokers",
		Short:   "list brokers registered in ZooKeeper with live stats (uptime, connections, messages)",
		Example: "  metaq brokers --zk 127.0.0.1:2181",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			rows, err := withZK(cmd.Context(), g, 1, func(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) ([]clusterview.BrokerRow, error) {
				brokers, err := clusterview.ListBrokers(ctx, s, p)
				if err != nil {
					return nil, err
				}
				stats := clusterview.CollectStats(ctx, brokers, "")
				rows := make([]clusterview.BrokerRow, 0, len(brokers))
				for _, br := range brokers {
					rows = append(rows, clusterview.BrokerRowOf(br, stats[br.ID]))
				}
				return rows, nil
			})
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), g, rows, "no brokers registered under "+g.paths().BrokerIDs(), printBrokers)
		},
	}
}

func printBrokers(w io.Writer, rows []clusterview.BrokerRow) error {
	out := make([][]string, 0, len(rows))
	for _, r := range rows {
		if r.Status != "up" {
			out = append(out, []string{strconv.Itoa(r.ID), orDash(r.URI), r.Status, "-", "-", "-", "-", "-", "-", orDash(r.Error)})
			continue
		}
		out = append(out, []string{strconv.Itoa(r.ID), r.URI, r.Status, r.Version,
			(time.Duration(r.Uptime) * time.Second).String(), strconv.FormatInt(r.Connections, 10),
			strconv.FormatInt(r.Messages, 10), strconv.FormatInt(r.Puts, 10), strconv.FormatInt(r.Gets, 10), "-"})
	}
	return printTable(w, []string{"ID", "URI", "STATUS", "VERSION", "UPTIME", "CONNECTIONS", "MESSAGES", "PUTS", "GETS", "ERROR"}, out)
}

// usageArgs makes cobra's argument-count errors usage errors (exit 2).
func usageArgs(fn cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := fn(cmd, args); err != nil {
			return usageError{fmt.Errorf("%s: %w (see `%s --help`)", cmd.CommandPath(), err, cmd.CommandPath())}
		}
		return nil
	}
}
