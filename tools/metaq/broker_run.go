package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/config"
	"github.com/metaq-go/metaq/dashboard"
	"github.com/metaq-go/metaq/internal/tlsconf"
)

// runBroker loads the config, runs a broker until SIGTERM/SIGINT, then shuts
// down gracefully: deregister, stop accepting, finish in-flight requests,
// flush, write the clean-shutdown markers. SIGHUP reloads the TLS
// certificates, the admin token and the users and ACL files without
// dropping connections. With dash, the read-only dashboard is served at
// /dashboard/ on the admin port.
func runBroker(ctx context.Context, g *globals, configPath, listen, admin string, dash bool) error {
	log := g.logger()
	cfg, err := config.Load(configPath, config.WithLogger(log))
	if err != nil {
		return err
	}
	opts := broker.OptionsFromConfig(cfg, log)
	if listen != "" {
		opts.ListenAddr = listen
	}
	if err := broker.ApplyReplicationClient(&opts, cfg.ReplicationClient()); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	sec := cfg.Security()
	if sec.TLS() {
		if opts.TLS, err = tlsconf.NewServer(sec.TLSCertFile, sec.TLSKeyFile, sec.TLSClientCAFile); err != nil {
			return fmt.Errorf("broker: [security]: %w", err)
		}
		if sec.PlaintextPort > 0 {
			host, _, _ := net.SplitHostPort(opts.ListenAddr)
			opts.PlaintextAddr = net.JoinHostPort(host, strconv.Itoa(sec.PlaintextPort))
		}
	}
	adminAt := adminAddr(admin, cfg.Broker().AdminHost, cfg.Broker().AdminPort)
	if dash && (adminAt == "" || !opts.ZK.Enable) {
		return usageError{errors.New("broker: --dashboard is served on the admin port from ZooKeeper: set adminPort (or --admin) and zk.zkEnable=true, or run `metaq dashboard --zk HOST:PORT` on its own")}
	}
	fsync := newFsyncMetrics()
	opts.Store.OnSync = fsync.observe
	b, err := broker.New(opts)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := b.Start(ctx); err != nil {
		_ = b.Shutdown(context.Background())
		return err
	}
	var a *adminServer
	if addr := adminAt; addr != "" {
		a, err = startAdminWith(addr, b, adminSecurity{TLS: opts.TLS, TokenFile: sec.AdminTokenFile, IsAdmin: b.IsAdmin}, log, fsync.collectors()...)
		if err != nil {
			_ = b.Shutdown(context.Background())
			return err
		}
		defer func() { _ = a.Close(context.Background()) }()
	}
	if dash {
		stopDash, err := mountDashboard(ctx, a, opts, log)
		if err != nil {
			_ = b.Shutdown(context.Background())
			return err
		}
		defer stopDash()
	}
	log.Info("broker ready", "addr", b.Addr(), "uri", b.URI(), "config", configPath, "zookeeper", opts.ZK.Enable, "tls", opts.TLS != nil)
	for {
		select {
		case <-hup:
			reloadOnHUP(b, a, log)
			continue
		case <-ctx.Done():
		}
		break
	}
	log.Info("signal received: shutting down gracefully")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return b.Shutdown(sctx)
}

// reloadOnHUP reloads what SIGHUP reloads; a failure keeps the old material
// and is logged (the broker keeps serving).
func reloadOnHUP(b *broker.Broker, a *adminServer, log *slog.Logger) {
	errs := []error{b.ReloadSecurity()}
	if b.TLSEnabled() {
		errs = append(errs, b.ReloadTLS())
	}
	if a != nil {
		errs = append(errs, a.Reload())
	}
	if err := errors.Join(errs...); err != nil {
		log.Error("SIGHUP: reload failed; what failed to load stays as it was (the previous certificates, token, users or rules)", "err", err)
		return
	}
	log.Info("SIGHUP: TLS certificates, admin token, users and ACL files reloaded")
}

// mountDashboard serves the read-only dashboard at /dashboard/ on the admin
// port, reading the cluster through its own ZooKeeper session; stop ends
// its collection loop and waits for it.
func mountDashboard(ctx context.Context, a *adminServer, opts broker.Options, log *slog.Logger) (stop func(), err error) {
	srv, err := dashboard.New(dashboard.Options{ZK: opts.ZK.Servers, ZKRoot: opts.ZK.Root, BasePath: "/dashboard",
		Logger: log.With("component", "dashboard")})
	if err != nil {
		return nil, fmt.Errorf("broker: --dashboard: %w", err)
	}
	a.Mount("/dashboard/", srv.Handler())
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Run(ctx)
	}()
	log.Info("dashboard served on the admin port", "url", a.scheme+"://"+a.Addr()+"/dashboard/")
	return func() { cancel(); <-done }, nil
}
