package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/protocol"
)

func newStatsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "stats <broker host:port> [item]",
		Short: "print a broker's `stats` (items: topics, offsets, realtime, help, config, reset, or a topic name)",
		Long: `Send "stats <item>" to one broker and print the key/value lines.

With -o json the lines become one object: numbers and booleans are typed, a
value made of "name value" pairs (the topics and offsets items) becomes an
object, and for the offsets item every topic maps to a list of partitions.`,
		Example: "  metaq stats 127.0.0.1:8123\n  metaq stats 127.0.0.1:8123 offsets -o json",
		Args:    usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			item := ""
			if len(args) == 2 {
				item = args[1]
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout())
			defer cancel()
			addr, err := brokerAddr(args[0])
			if err != nil {
				return usageError{err}
			}
			c, err := dialBroker(ctx, addr)
			if err != nil {
				return err
			}
			defer c.Close()
			w := cmd.OutOrStdout()
			if item == "config" {
				raw, err := c.StatsBody(ctx, item)
				if err != nil {
					return brokerErr(addr, "stats config", err)
				}
				if g.output() == "json" {
					return printJSON(w, map[string]string{"config": string(raw)})
				}
				_, err = w.Write(raw)
				return err
			}
			lines, err := c.Stats(ctx, item)
			if err != nil {
				return brokerErr(addr, fmt.Sprintf("stats %q", item), err)
			}
			if len(lines) == 0 && item != "" {
				return fmt.Errorf("broker %s has no stats item or topic %q: see `metaq stats %s help`", addr, item, args[0])
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

// statsObject turns stats lines into a JSON-friendly object.
func statsObject(item string, lines []protocol.StatsLine) map[string]any {
	out := make(map[string]any, len(lines))
	for _, l := range lines {
		v := statsValue(l.Value)
		if item != "offsets" {
			out[l.Key] = v
			continue
		}
		list, _ := out[l.Key].([]any)
		out[l.Key] = append(list, v)
	}
	return out
}

// statsValue types a stats value: an integer, a float, a bool, an object of
// "name value" pairs, or else the string.
func statsValue(s string) any {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	if b, err := strconv.ParseBool(s); err == nil && (s == "true" || s == "false") {
		return b
	}
	f := strings.Fields(s)
	if len(f) >= 2 && len(f)%2 == 0 {
		obj := make(map[string]any, len(f)/2)
		for i := 0; i < len(f); i += 2 {
			if !isStatsName(f[i]) {
				return s
			}
			obj[f[i]] = statsValue(f[i+1])
		}
		return obj
	}
	return s
}

func isStatsName(s string) bool {
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return s != ""
}

// statsMap indexes stats lines by key (last one wins).
func statsMap(lines []protocol.StatsLine) map[string]string {
	m := make(map[string]string, len(lines))
	for _, l := range lines {
		m[l.Key] = l.Value
	}
	return m
}
