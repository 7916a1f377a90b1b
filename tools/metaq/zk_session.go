package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
)

// withZK is how every command reaches ZooKeeper: it opens a session from
// --zk/--zk-root (connecting within --timeout), runs fn with a context that
// bounds its requests to ops × --timeout (ops: about how many --timeout-sized
// steps fn takes; ZooKeeper reads and broker requests alike), and closes the
// session when fn returns.
func withZK[T any](ctx context.Context, g *globals, ops int,
	fn func(context.Context, *zkrecipes.Session, coordinator.Paths) (T, error)) (T, error) {
	var zero T
	s, err := connectZK(ctx, g)
	if err != nil {
		return zero, err
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(ops)*g.timeout())
	defer cancel()
	return fn(ctx, s, g.paths())
}

// runZK is withZK for work that yields only an error.
func runZK(ctx context.Context, g *globals, ops int, fn func(context.Context, *zkrecipes.Session, coordinator.Paths) error) error {
	_, err := withZK(ctx, g, ops, func(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) (struct{}, error) {
		return struct{}{}, fn(ctx, s, p)
	})
	return err
}

// connectZK opens a ZooKeeper session from --zk, or explains how to give one.
func connectZK(ctx context.Context, g *globals) (*zkrecipes.Session, error) {
	servers := g.zkServers()
	if len(servers) == 0 {
		return nil, usageError{errors.New("no ZooKeeper given: pass --zk host:port[,host:port...] or set METAQ_ZK")}
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	if g.v.GetBool("verbose") {
		log = g.logger()
	}
	return zkrecipes.Connect(ctx, servers, append([]zkrecipes.Option{zkrecipes.WithLogger(log)}, g.zkSessionOptions()...)...)
}
