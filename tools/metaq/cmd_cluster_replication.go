package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/clusterview"
	"github.com/metaq-go/metaq/zkrecipes"
)

func printReplication(w io.Writer, sets []clusterview.ReplicaSet) error {
	if len(sets) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nReplication:\n")
	dash := func(p *int64) string {
		if p == nil {
			return "-"
		}
		return strconv.FormatInt(*p, 10)
	}
	var rows [][]string
	for _, rs := range sets {
		for _, m := range rs.Members {
			member := strconv.Itoa(m.Member)
			if m.Member < 0 {
				member = "?"
			}
			inSync := "no"
			if m.InSync {
				inSync = "yes"
			}
			rows = append(rows, []string{strconv.Itoa(rs.BrokerID), member, m.Role, m.URI, strconv.FormatInt(rs.Epoch, 10),
				orDash(m.Mode), inSync, dash(m.AckedBytes), dash(m.LagBytes), dash(m.LagMs)})
		}
	}
	if err := printTable(w, []string{"ID", "MEMBER", "ROLE", "URI", "EPOCH", "MODE", "IN-SYNC", "ACKED-BYTES", "LAG-BYTES", "LAG-MS"}, rows); err != nil {
		return err
	}
	for _, rs := range sets {
		if rs.Promotion != nil {
			fmt.Fprintf(w, "broker %d: switchover to member %d %s %s\n", rs.BrokerID, rs.Promotion.Member, rs.Promotion.State, rs.Promotion.Reason)
		}
		if rs.Error != "" {
			fmt.Fprintf(w, "broker %d: replication stats unavailable: %s\n", rs.BrokerID, rs.Error)
		}
	}
	return nil
}

func newClusterPromoteCmd(g *globals) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "promote <brokerId> <memberId>",
		Short: "planned switchover: make an in-sync slave the master of a broker id, losing no acknowledged message",
		Long: `Asks the master of <brokerId> to hand its mastership to member <memberId>
(the slaveId of a slave; 0 is the configured master). The master checks that
the member is in the in-sync set, stops accepting puts, waits until the member
has acknowledged everything, and gives the election up; the member then bumps
the epoch and leads, and every other member follows it (docs/REPLICATION.md).`,
		Example: "  metaq cluster promote 1 1 --zk 127.0.0.1:2181\n  metaq cluster promote 1 0 --wait 1m",
		Args:    usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err1 := strconv.Atoi(args[0])
			member, err2 := strconv.Atoi(args[1])
			if err1 != nil || err2 != nil || id < 0 || member < 0 {
				return usageError{fmt.Errorf("promote: want <brokerId> <memberId>, two non-negative numbers; got %q %q", args[0], args[1])}
			}
			ops := 1 + int(wait/g.timeout())
			res, err := withZK(cmd.Context(), g, ops, func(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) (clusterview.PromoteResult, error) {
				return clusterview.Promote(ctx, s, p, id, member, wait)
			})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if g.output() == "json" {
				return printJSON(w, res)
			}
			if res.Status == "done" {
				fmt.Fprintf(w, "broker %d: member %d is master (epoch %d)\n", res.BrokerID, res.Member, res.Epoch)
			} else {
				fmt.Fprintf(w, "broker %d: switchover to member %d requested; watch it with `metaq cluster`\n", res.BrokerID, res.Member)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to wait for the switchover (0: only request it)")
	return cmd
}
