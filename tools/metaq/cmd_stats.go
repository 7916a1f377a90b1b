package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/internal/clusterview"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

func newStatsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "stats [<broker host:port>] [item]",
		Short: "print `stats` of one broker, or of every broker registered in ZooKeeper (items: topics, offsets, realtime, help, config, reset, or a topic name)",
		Long: `Send "stats <item>" to one broker and print the key/value lines.

Without a broker address (and with --zk), every broker registered in
ZooKeeper is asked and each line is prefixed with its broker id and address;
a broker that does not answer gets an error row and the command exits
non-zero. An argument with ':' (host:port, meta://host:port) is a broker;
any other is the item.

With -o json the lines become one object: numbers and booleans are typed, a
value made of "name value" pairs (the topics and offsets items) becomes an
object, and for the offsets item every topic maps to a list of partitions.
For every broker, the output is a list of {broker_id, addr, stats, error}.`,
		Example: "  metaq stats 127.0.0.1:8123\n  metaq stats 127.0.0.1:8123 offsets -o json\n  metaq stats --zk 127.0.0.1:2181\n  metaq stats topics --zk 127.0.0.1:2181",
		Args:    usageArgs(cobra.RangeArgs(0, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			broker, item := splitStatsArgs(g, args)
			if broker == "" {
				if len(g.zkServers()) == 0 {
					return usageError{errors.New("stats: give a broker host:port, or --zk host:port to ask every registered broker")}
				}
				return statsAll(cmd, g, item)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout())
			defer cancel()
			addr, err := brokerAddr(broker)
			if err != nil {
				return usageError{err}
			}
			c, err := clusterview.DialBroker(ctx, addr)
			if err != nil {
				return err
			}
			defer c.Close()
			w := cmd.OutOrStdout()
			if item == "config" {
				raw, err := c.StatsBody(ctx, item)
				if err != nil {
					return clusterview.BrokerErr(addr, "stats config", err)
				}
				if g.output() == "json" {
					return printJSON(w, map[string]string{"config": string(raw)})
				}
				_, err = w.Write(raw)
				return err
			}
			lines, err := c.Stats(ctx, item)
			if err != nil {
				return clusterview.BrokerErr(addr, fmt.Sprintf("stats %q", item), err)
			}
			if len(lines) == 0 && item != "" {
				return fmt.Errorf("broker %s has no stats item or topic %q: see `metaq stats %s help`", addr, item, broker)
			}
			if g.output() == "json" {
				return printJSON(w, statsObject(item, lines))
			}
			rows := make([][]string, len(lines))
			for i, l := range lines {
				rows[i] = []string{l.Key, l.Value}
			}
			return printTable(w, []string{"KEY", "VALUE"}, rows)
		},
	}
}

// splitStatsArgs tells the broker address and the item apart. Without
// ZooKeeper a single argument is the broker, as it always was.
func splitStatsArgs(g *globals, args []string) (broker, item string) {
	switch {
	case len(args) == 2:
		return args[0], args[1]
	case len(args) == 1 && (len(g.zkServers()) == 0 || looksLikeBrokerAddr(args[0])):
		return args[0], ""
	case len(args) == 1:
		return "", args[0]
	}
	return "", ""
}

// brokerStatsRow is one broker's answer in `metaq stats --zk -o json`.
type brokerStatsRow struct {
	BrokerID int            `json:"broker_id"`
	Addr     string         `json:"addr"`
	Stats    map[string]any `json:"stats,omitempty"`
	Config   *string        `json:"config,omitempty"` // the config item
	Error    string         `json:"error,omitempty"`
}

// statsAll is `metaq stats [item]` with --zk: every registered broker.
func statsAll(cmd *cobra.Command, g *globals, item string) error {
	brokers, err := registeredBrokers(cmd.Context(), g)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout())
	defer cancel()
	type answer struct {
		raw   []byte // the config item
		lines []protocol.StatsLine
	}
	res := clusterview.OnEveryBroker(ctx, brokers, fmt.Sprintf("stats %q", item), func(ctx context.Context, c *conn.Conn) (a answer, err error) {
		if item == "config" {
			a.raw, err = c.StatsBody(ctx, item)
		} else {
			a.lines, err = c.Stats(ctx, item)
		}
		return a, err
	})
	rows := make([]brokerStatsRow, 0, len(brokers))
	var table [][]string
	w := cmd.OutOrStdout()
	for _, br := range brokers {
		r := res[br.ID]
		row := brokerStatsRow{BrokerID: br.ID, Addr: br.Addr}
		id := strconv.Itoa(br.ID)
		switch {
		case r.Err != nil:
			row.Error = r.Err.Error()
			table = append(table, []string{id, br.Addr, "error", row.Error})
		case item == "config":
			cfg := string(r.Val.raw)
			row.Config = &cfg
			if g.output() != "json" {
				fmt.Fprintf(w, "# broker %d (%s)\n%s\n", br.ID, br.Addr, strings.TrimRight(cfg, "\n"))
			}
		default:
			row.Stats = statsObject(item, r.Val.lines)
			for _, l := range r.Val.lines {
				table = append(table, []string{id, br.Addr, l.Key, l.Value})
			}
		}
		rows = append(rows, row)
	}
	var perr error
	switch {
	case g.output() == "json":
		perr = printJSON(w, rows)
	case item != "config" || len(table) > 0:
		perr = printTable(w, []string{"BROKER", "ADDR", "KEY", "VALUE"}, table)
	}
	return errors.Join(perr, clusterview.FailedBrokers(res, len(brokers)))
}

// statsObject turns stats lines into a JSON-friendly object.
func statsObject(item string, lines []protocol.StatsLine) map[string]any {
	out := make(map[string]any, len(lines))
	for _, l := range lines {
		v := clusterview.StatsValue(l.Value)
		if item != "offsets" {
			out[l.Key] = v
			continue
		}
		list, _ := out[l.Key].([]any)
		out[l.Key] = append(list, v)
	}
	return out
}
