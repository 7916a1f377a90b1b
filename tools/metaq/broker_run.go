package main

import (
	"context"
	"os/signal"
	"syscall"
	"time"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/config"
)

// runBroker loads the config, runs a broker until SIGTERM/SIGINT (SIGHUP
// reloads the users and ACL files), then shuts
// down gracefully: deregister, stop accepting, finish in-flight requests,
// flush, write the clean-shutdown markers.
func runBroker(ctx context.Context, g *globals, configPath, listen, admin string) error {
	log := g.logger()
	cfg, err := config.Load(configPath, config.WithLogger(log))
	if err != nil {
		return err
	}
	opts := broker.OptionsFromConfig(cfg, log)
	if listen != "" {
		opts.ListenAddr = listen
	}
	fsync := newFsyncMetrics()
	opts.Store.OnSync = fsync.observe
	b, err := broker.New(opts)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := b.Start(ctx); err != nil {
		_ = b.Shutdown(context.Background())
		return err
	}
	defer reloadOnHangup(ctx, b.ReloadSecurity, log)()
	if addr := adminAddr(admin, cfg.Broker().AdminPort); addr != "" {
		a, err := startAdmin(addr, b, log, fsync.collectors()...)
		if err != nil {
			_ = b.Shutdown(context.Background())
			return err
		}
		defer func() { _ = a.Close(context.Background()) }()
	}
	log.Info("broker ready", "addr", b.Addr(), "uri", b.URI(), "config", configPath, "zookeeper", opts.ZK.Enable)
	<-ctx.Done()
	log.Info("signal received: shutting down gracefully")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return b.Shutdown(sctx)
}
