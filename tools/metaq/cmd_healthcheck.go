package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
)

// healthResult is one broker's answer in `metaq healthcheck`.
type healthResult struct {
	ID      *int   `json:"id,omitempty"` // set when found in ZooKeeper
	Addr    string `json:"addr"`
	Healthy bool   `json:"healthy"`
	Version string `json:"version,omitempty"`
	Latency string `json:"latency,omitempty"`
	Error   string `json:"error,omitempty"`
}

type healthReport struct {
	Healthy bool           `json:"healthy"`
	Brokers []healthResult `json:"brokers"`
	Problem string         `json:"problem,omitempty"`
}

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

func healthcheck(ctx context.Context, g *globals, addrs []string, expect int) (healthReport, error) {
	type target struct {
		id   *int
		addr string
	}
	var targets []target
	rep := healthReport{Healthy: true, Brokers: []healthResult{}}
	switch {
	case len(addrs) > 0:
		for _, a := range addrs {
			addr, err := brokerAddr(a)
			if err != nil {
				return rep, usageError{err}
			}
			targets = append(targets, target{addr: addr})
		}
	case len(g.zkServers()) > 0:
		regs, err := withZK(ctx, g, 1, listBrokers)
		if err != nil {
			return rep, err
		}
		for _, br := range regs {
			if br.Registered {
				targets = append(targets, target{id: &br.ID, addr: br.Addr})
			}
		}
		if len(targets) < expect {
			rep.Healthy = false
			rep.Problem = fmt.Sprintf("%d broker(s) registered under %s, expected at least %d", len(targets), g.paths().BrokerIDs(), expect)
		}
	default:
		return rep, usageError{errors.New("nothing to check: pass --broker host:port, or --zk host:port to check every registered broker")}
	}
	results := make([]healthResult, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			results[i] = checkBroker(ctx, g, t.addr)
			results[i].ID = t.id
		})
	}
	wg.Wait()
	for _, r := range results {
		rep.Healthy = rep.Healthy && r.Healthy
	}
	rep.Brokers = results
	return rep, nil
}

// checkBroker sends `version` and waits for a 200.
func checkBroker(ctx context.Context, g *globals, addr string) healthResult {
	res := healthResult{Addr: addr}
	if addr == "" {
		res.Error = "no address: the URI in ZooKeeper is not meta://host:port"
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout())
	defer cancel()
	start := time.Now()
	c, err := g.dialBroker(ctx, addr)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer c.Close()
	v, err := c.Version(ctx)
	if err != nil {
		res.Error = brokerErr(addr, "version", err).Error()
		return res
	}
	res.Healthy, res.Version = true, v
	res.Latency = time.Since(start).Round(time.Microsecond).String()
	return res
}

func printHealth(w io.Writer, rep healthReport) error {
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

func healthSummary(rep healthReport) string {
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
