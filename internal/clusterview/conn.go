package clusterview

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// dialKey carries DialBroker's connection options in a context (WithDial).
type dialKey struct{}

// WithDial returns a context in which DialBroker, and so every function of
// this package that asks brokers, connects with the options opts returns:
// the TLS configuration and credentials of a command or a dashboard
// (conn.Options.TLS, Auth). opts is called for every dial; its error fails
// the dial. Without it, connections are plaintext and anonymous.
func WithDial(ctx context.Context, opts func() (conn.Options, error)) context.Context {
	return context.WithValue(ctx, dialKey{}, opts)
}

// DialBroker opens the connection every broker request of the CLI goes over
// (internal/conn, without heartbeats: a command's requests are bounded by
// their ctx), with the TLS and credentials of WithDial. The caller closes it.
func DialBroker(ctx context.Context, addr string) (*conn.Conn, error) {
	var o conn.Options
	if f, ok := ctx.Value(dialKey{}).(func() (conn.Options, error)); ok {
		var err error
		if o, err = f(); err != nil {
			return nil, err
		}
	}
	o.HeartbeatInterval = -1
	c, err := conn.Dial(ctx, addr, o)
	if errors.Is(err, conn.ErrAuth) {
		return nil, fmt.Errorf("broker %s: %w (check the user and the password: --user, --password-file or METAQ_PASSWORD)", addr, err)
	}
	if err != nil {
		return nil, fmt.Errorf("broker %s: %w (is the broker running? check the address, or `metaq brokers --zk ...` for registered ones)", addr, err)
	}
	return c, nil
}

// BrokerErr says which broker and request failed, and what to check.
func BrokerErr(addr, what string, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("broker %s: %s: no reply within --timeout: %w", addr, what, err)
	case errors.Is(err, conn.ErrConnLost):
		return fmt.Errorf("broker %s: %s: %w (is it a metaq/MetaQ broker?)", addr, what, err)
	}
	return fmt.Errorf("broker %s: %s: %w", addr, what, err)
}

// Result is one broker's answer, or why there is none.
type Result[T any] struct {
	Val T
	Err error
}

// OnEveryBroker dials every registered broker concurrently, runs fn (the
// request named what) on its connection and returns the results by broker
// id. Brokers without a master node are left out.
func OnEveryBroker[T any](ctx context.Context, brokers []Broker, what string,
	fn func(context.Context, *conn.Conn) (T, error)) map[int]Result[T] {
	type res struct {
		id int
		r  Result[T]
	}
	ch := make(chan res, len(brokers))
	n := 0
	for _, br := range brokers {
		if !br.Registered {
			continue
		}
		n++
		go func() {
			if br.Addr == "" {
				ch <- res{br.ID, Result[T]{Err: fmt.Errorf("broker %d: bad URI %q in ZooKeeper (want meta://host:port)", br.ID, br.URI)}}
				return
			}
			c, err := DialBroker(ctx, br.Addr)
			if err != nil {
				ch <- res{br.ID, Result[T]{Err: err}}
				return
			}
			defer c.Close()
			v, err := fn(ctx, c)
			if err != nil {
				err = BrokerErr(br.Addr, what, err)
			}
			ch <- res{br.ID, Result[T]{v, err}}
		}()
	}
	out := make(map[int]Result[T], n)
	for range n {
		r := <-ch
		out[r.id] = r.r
	}
	return out
}

// FailedBrokers joins the errors of the brokers that did not answer, nil
// when all did.
func FailedBrokers[T any](res map[int]Result[T], total int) error {
	var errs []error
	for _, id := range sortedIDs(res) {
		if err := res[id].Err; err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d brokers did not answer: %w", len(errs), total, errors.Join(errs...))
}

// sortedIDs returns the keys of m in order.
func sortedIDs[V any](m map[int]V) []int {
	ids := make([]int, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// Lines is one broker's answer to a `stats` item, or why there is none.
type Lines struct {
	Lines []protocol.StatsLine
	Err   error
}

// CollectLines asks every registered broker for `stats <item>`, concurrently.
func CollectLines(ctx context.Context, brokers []Broker, item string) map[int]Lines {
	res := OnEveryBroker(ctx, brokers, fmt.Sprintf("stats %q", item), func(ctx context.Context, c *conn.Conn) ([]protocol.StatsLine, error) {
		return c.Stats(ctx, item)
	})
	out := make(map[int]Lines, len(res))
	for id, r := range res {
		out[id] = Lines{r.Val, r.Err}
	}
	return out
}

// StatsValue types a stats value: an integer, a float, a bool, an object of
// "name value" pairs, or else the string.
func StatsValue(s string) any {
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
			obj[f[i]] = StatsValue(f[i+1])
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

// StatsMap indexes stats lines by key (last one wins).
func StatsMap(lines []protocol.StatsLine) map[string]string {
	m := make(map[string]string, len(lines))
	for _, l := range lines {
		m[l.Key] = l.Value
	}
	return m
}
