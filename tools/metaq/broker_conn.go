package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/metaq-go/metaq/internal/clusterview"
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

// registeredBrokers lists the brokers with a master node in ZooKeeper, for
// commands that ask every broker; none is an error saying where it looked.
func registeredBrokers(ctx context.Context, g *globals) ([]clusterview.Broker, error) {
	all, err := withZK(ctx, g, 2, clusterview.ListBrokers)
	if err != nil {
		return nil, err
	}
	var out []clusterview.Broker
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
