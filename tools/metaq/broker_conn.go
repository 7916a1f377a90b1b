package main

import (
	"context"
	"errors"
	"fmt"
	"net"
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
// their ctx). The caller closes it.
func dialBroker(ctx context.Context, addr string) (*conn.Conn, error) {
	c, err := conn.Dial(ctx, addr, conn.Options{HeartbeatInterval: -1})
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
