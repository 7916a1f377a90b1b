package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/metaq-go/metaq/internal/conn"
)

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

// dialBroker opens the connection every broker request of the CLI goes over
// (internal/conn, without heartbeats: a command's requests are bounded by
// their ctx), with the TLS and credentials of the --tls-* and --user flags.
// The caller closes it.
func (g *globals) dialBroker(ctx context.Context, addr string) (*conn.Conn, error) {
	sec, err := g.security()
	if err != nil {
		return nil, err
	}
	c, err := conn.Dial(ctx, addr, conn.Options{HeartbeatInterval: -1, TLS: sec.tls, Auth: sec.auth})
	if errors.Is(err, conn.ErrAuth) {
		return nil, fmt.Errorf("broker %s: %w", addr, authHint(err))
	}
	if err != nil {
		return nil, fmt.Errorf("broker %s: %w (is the broker running? check the address, or `metaq brokers --zk ...` for registered ones)", addr, err)
	}
	return c, nil
}

// brokerErr says which broker and request failed, and what to check.
func brokerErr(addr, what string, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("broker %s: %s: no reply within --timeout: %w", addr, what, err)
	case errors.Is(err, conn.ErrConnLost):
		return fmt.Errorf("broker %s: %s: %w (is it a metaq/MetaQ broker?)", addr, what, err)
	}
	return fmt.Errorf("broker %s: %s: %w", addr, what, err)
}

// brokerResult is one broker's answer, or why there is none.
type brokerResult[T any] struct {
	val T
	err error
}

// onEveryBroker dials every registered broker concurrently, runs fn (the
// request named what) on its connection and returns the results by broker
// id. Brokers without a master node are left out.
func onEveryBroker[T any](ctx context.Context, g *globals, brokers []brokerReg, what string,
	fn func(context.Context, *conn.Conn) (T, error)) map[int]brokerResult[T] {
	type res struct {
		id int
		r  brokerResult[T]
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
				ch <- res{br.ID, brokerResult[T]{err: fmt.Errorf("broker %d: bad URI %q in ZooKeeper (want meta://host:port)", br.ID, br.URI)}}
				return
			}
			c, err := g.dialBroker(ctx, br.Addr)
			if err != nil {
				ch <- res{br.ID, brokerResult[T]{err: err}}
				return
			}
			defer c.Close()
			v, err := fn(ctx, c)
			if err != nil {
				err = brokerErr(br.Addr, what, err)
			}
			ch <- res{br.ID, brokerResult[T]{v, err}}
		}()
	}
	out := make(map[int]brokerResult[T], n)
	for range n {
		r := <-ch
		out[r.id] = r.r
	}
	return out
}

// registeredBrokers lists the brokers with a master node in ZooKeeper, for
// commands that ask every broker; none is an error saying where it looked.
func registeredBrokers(ctx context.Context, g *globals) ([]brokerReg, error) {
	all, err := withZK(ctx, g, 2, listBrokers)
	if err != nil {
		return nil, err
	}
	var out []brokerReg
	for _, br := range all {
		if br.Registered {
			out = append(out, br)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no broker is registered under %s (ZooKeeper %s): start one, or check --zk and --zk-root",
			g.paths().BrokerIDs(), strings.Join(g.zkServers(), ","))
	}
	return out, nil
}

// looksLikeBrokerAddr tells a broker address (host:port or meta://...) from
// a stats item or topic name, which never contain ':'.
func looksLikeBrokerAddr(s string) bool {
	return strings.HasPrefix(s, "meta://") || strings.Contains(s, ":")
}

// failedBrokers joins the errors of the brokers that did not answer, nil
// when all did.
func failedBrokers[T any](res map[int]brokerResult[T], total int) error {
	var errs []error
	for _, id := range sortedIDs(res) {
		if err := res[id].err; err != nil {
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
