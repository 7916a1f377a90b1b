package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

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
			defer c.close()
			w := cmd.OutOrStdout()
			if item == "config" {
				raw, err := c.statsRaw(ctx, item)
				if err != nil {
					return err
				}
				if g.output() == "json" {
					return printJSON(w, map[string]string{"config": string(raw)})
				}
				_, err = w.Write(raw)
				return err
			}
			lines, err := c.stats(ctx, item)
			if err != nil {
				return err
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

// brokerAddr accepts host:port, meta://host:port or a bare host (port 8123).
func brokerAddr(s string) (string, error) {
	s = strings.TrimPrefix(s, "meta://")
	if s == "" {
		return "", errors.New("empty broker address: want host:port, e.g. 127.0.0.1:8123")
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return net.JoinHostPort(s, "8123"), nil
		}
		return "", fmt.Errorf("broker address %q: %v (want host:port, e.g. 127.0.0.1:8123)", s, err)
	}
	return s, nil
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

// brokerConn is a raw MetaQ protocol connection for admin requests (stats,
// version); one request at a time.
type brokerConn struct {
	addr   string
	conn   net.Conn
	dec    *protocol.ReplyDecoder
	buf    []byte // unread reply bytes
	opaque int32
}

func dialBroker(ctx context.Context, addr string) (*brokerConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("broker %s: %w (is the broker running? check the address, or `metaq brokers --zk ...` for registered ones)", addr, err)
	}
	return &brokerConn{addr: addr, conn: c, dec: protocol.NewReplyDecoder(protocol.Config{})}, nil
}

func (c *brokerConn) close() {
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.conn.Write(protocol.AppendQuit(nil))
	_ = c.conn.Close()
}

// roundTrip sends req (built with opaque) and returns the reply's code and a
// copy of its body.
func (c *brokerConn) roundTrip(ctx context.Context, req []byte, opaque int32) (int32, []byte, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := c.conn.Write(req); err != nil {
		return 0, nil, c.wireErr(ctx, err)
	}
	chunk := make([]byte, 64<<10)
	for {
		r, n, err := c.dec.Decode(c.buf)
		if err != nil {
			return 0, nil, fmt.Errorf("broker %s: malformed reply: %w", c.addr, err)
		}
		if r != nil {
			code, body, op := r.Code, append([]byte(nil), r.Body...), r.Opaque
			c.buf = c.buf[n:]
			if op != opaque {
				continue // a stray reply: not ours
			}
			return code, body, nil
		}
		m, err := c.conn.Read(chunk)
		c.buf = append(c.buf, chunk[:m]...)
		if err != nil && m == 0 {
			return 0, nil, c.wireErr(ctx, err)
		}
	}
}

func (c *brokerConn) wireErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("broker %s: no reply within --timeout: %w", c.addr, ctx.Err())
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("broker %s closed the connection (is it a metaq/MetaQ broker?)", c.addr)
	}
	return fmt.Errorf("broker %s: %w", c.addr, err)
}

func (c *brokerConn) nextOpaque() int32 { c.opaque++; return c.opaque }

// statsRaw returns the body of a 200 reply to `stats <item>`.
func (c *brokerConn) statsRaw(ctx context.Context, item string) ([]byte, error) {
	op := c.nextOpaque()
	code, body, err := c.roundTrip(ctx, protocol.AppendStatsRequest(nil, item, op), op)
	if err != nil {
		return nil, err
	}
	if code != protocol.CodeOK {
		return nil, fmt.Errorf("broker %s: stats %q: code %d: %s", c.addr, item, code, body)
	}
	return body, nil
}

// stats returns the lines of `stats <item>`.
func (c *brokerConn) stats(ctx context.Context, item string) ([]protocol.StatsLine, error) {
	body, err := c.statsRaw(ctx, item)
	if err != nil {
		return nil, err
	}
	lines, err := protocol.ParseStatsBody(body)
	if err != nil {
		return nil, fmt.Errorf("broker %s: stats %q: %w", c.addr, item, err)
	}
	return lines, nil
}

// version returns the broker's answer to `version`.
func (c *brokerConn) version(ctx context.Context) (string, error) {
	op := c.nextOpaque()
	code, body, err := c.roundTrip(ctx, protocol.AppendVersion(nil, op), op)
	if err != nil {
		return "", err
	}
	if code != protocol.CodeOK {
		return "", fmt.Errorf("broker %s: version: code %d: %s", c.addr, code, body)
	}
	return string(body), nil
}

// statsMap indexes stats lines by key (last one wins).
func statsMap(lines []protocol.StatsLine) map[string]string {
	m := make(map[string]string, len(lines))
	for _, l := range lines {
		m[l.Key] = l.Value
	}
	return m
}
