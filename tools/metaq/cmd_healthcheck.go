package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/internal/clusterview"
)

func newHealthcheckCmd(g *globals) *cobra.Command {
	var brokers []string
	var expect int
	cmd := &cobra.Command{
		Use:   "healthcheck (--broker HOST:PORT... | --zk HOST:PORT)",
		Short: "check that brokers answer `version` (exit 3 if one does not)",
		Long: `Healthcheck sends "version" to each broker given with --broker or, with --zk,
to every broker registered in ZooKeeper, and exits 3 when one does not answer
200 within --timeout, or when fewer than --expect brokers are registered.
Exit 1 means the check itself could not run (e.g. ZooKeeper unreachable).
Use it as a container health check: metaq healthcheck --broker localhost:8123`,
		Example: "  metaq healthcheck --broker localhost:8123\n  metaq healthcheck --zk 127.0.0.1:2181 --expect 3",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := healthcheck(cmd.Context(), g, brokers, expect)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if g.output() == "json" {
				err = printJSON(w, rep)
			} else {
				err = printHealth(w, rep)
			}
			if err != nil {
				return err
			}
			if !rep.Healthy {
				return checkError{errors.New("unhealthy: " + healthSummary(rep))}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&brokers, "broker", nil, "broker address host:port (repeatable, or comma-separated)")
	cmd.Flags().IntVar(&expect, "expect", 1, "with --zk: fail when fewer brokers than this are registered")
	return cmd
}

func healthcheck(ctx context.Context, g *globals, addrs []string, expect int) (clusterview.HealthReport, error) {
	switch {
	case len(addrs) > 0:
		targets := make([]clusterview.HealthTarget, 0, len(addrs))
		for _, a := range addrs {
			addr, err := brokerAddr(a)
			if err != nil {
				return clusterview.HealthReport{}, usageError{err}
			}
			targets = append(targets, clusterview.HealthTarget{Addr: addr})
		}
		return clusterview.CheckAll(ctx, targets, g.timeout()), nil
	case len(g.zkServers()) > 0:
		regs, err := withZK(ctx, g, 1, clusterview.ListBrokers)
		if err != nil {
			return clusterview.HealthReport{}, err
		}
		return clusterview.CheckRegistered(ctx, regs, expect, g.paths(), g.timeout()), nil
	}
	return clusterview.HealthReport{}, usageError{errors.New("nothing to check: pass --broker host:port, or --zk host:port to check every registered broker")}
}

func printHealth(w io.Writer, rep clusterview.HealthReport) error {
	rows := make([][]string, 0, len(rep.Brokers))
	for _, r := range rep.Brokers {
		id := "-"
		if r.ID != nil {
			id = strconv.Itoa(*r.ID)
		}
		status := "ok"
		if !r.Healthy {
			status = "FAIL"
		}
		rows = append(rows, []string{id, r.Addr, status, orDash(r.Version), orDash(r.Latency), orDash(r.Error)})
	}
	if len(rows) > 0 {
		if err := printTable(w, []string{"ID", "ADDR", "STATUS", "VERSION", "LATENCY", "ERROR"}, rows); err != nil {
			return err
		}
	}
	if rep.Problem != "" {
		fmt.Fprintln(w, rep.Problem)
	}
	return nil
}

func healthSummary(rep clusterview.HealthReport) string {
	var bad []string
	for _, r := range rep.Brokers {
		if !r.Healthy {
			bad = append(bad, r.Addr)
		}
	}
	var parts []string
	if len(bad) > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d broker(s) did not answer version: %s", len(bad), len(rep.Brokers), strings.Join(bad, ", ")))
	}
	if rep.Problem != "" {
		parts = append(parts, rep.Problem)
	}
	return strings.Join(parts, "; ")
}
