package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/dashboard"
	"github.com/metaq-go/metaq/internal/secretfile"
)

type dashboardFlags struct {
	listen        string
	prometheus    string
	enableActions bool
	tokenFile     string
	brokerAdmin   []string
	interval      time.Duration
	history       int
	stallAfter    time.Duration
}

func newDashboardCmd(g *globals) *cobra.Command {
	var f dashboardFlags
	cmd := &cobra.Command{
		Use:   "dashboard --zk HOST:PORT [--listen 127.0.0.1:9180]",
		Short: "serve a web dashboard of the cluster: brokers, topics with rates, groups with lag, transactions, health",
		Long: `dashboard serves a read-only web UI (like nsqadmin) discovered from ZooKeeper and the
brokers' stats: the cluster (ZooKeeper, brokers with role, uptime, version, disk, connections,
replication), topics with put and consume rates and their trends, a topic's partitions, consumer
groups (members, owners, committed offset, log end, lag with its trend, stalled partitions), prepared
XA transactions and a health page that mirrors ` + "`metaq healthcheck`" + `. Every page answers JSON
with "Accept: application/json". Nothing is loaded from the Internet.

With --enable-actions the pages also offer offset resets (with a dry-run preview), closing a
partition and promoting an in-sync slave, each behind a confirmation page. Closing a partition is
sent to the broker's admin endpoint (--broker-admin ID=HOST:PORT) with the token of
--admin-token-file as "Authorization: Bearer"; resets and promotions go through ZooKeeper like
` + "`metaq groups reset-offsets`" + ` and ` + "`metaq cluster promote`" + `.`,
		Example: "  metaq dashboard --zk 127.0.0.1:2181\n  metaq dashboard --zk zk1:2181 --listen 0.0.0.0:9180 --prometheus http://prometheus:9090\n" +
			"  metaq dashboard --zk 127.0.0.1:2181 --enable-actions --admin-token-file /etc/metaq/admin.token --broker-admin 0=127.0.0.1:9100",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDashboard(ctx, g, f, cmd.OutOrStdout(), nil)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:9180", "HTTP listen address (keep it on loopback or behind a proxy with authentication)")
	fl.StringVar(&f.prometheus, "prometheus", "", "Prometheus base URL, e.g. http://127.0.0.1:9090: pages link to its graphs")
	fl.BoolVar(&f.enableActions, "enable-actions", false, "offer offset resets, closing partitions and promotions (each confirmed); default read-only")
	fl.StringVar(&f.tokenFile, "admin-token-file", "", "file holding the brokers' admin token (sent as Authorization: Bearer to their admin endpoints)")
	fl.StringSliceVar(&f.brokerAdmin, "broker-admin", nil, "admin endpoint of a broker, ID=HOST:PORT (repeatable), for closing partitions")
	fl.DurationVar(&f.interval, "interval", 5*time.Second, "how often to read the cluster")
	fl.IntVar(&f.history, "history", 120, "samples kept per rate and lag series")
	fl.DurationVar(&f.stallAfter, "stall-after", time.Minute, "highlight a partition whose lag is not being consumed for this long")
	return cmd
}

// dashboardOptions turns the flags into dashboard options.
func dashboardOptions(g *globals, f dashboardFlags) (dashboard.Options, error) {
	o := dashboard.Options{ZK: g.zkServers(), ZKRoot: g.zkRoot(), Timeout: g.timeout(), Interval: f.interval,
		History: f.history, StallAfter: f.stallAfter, Prometheus: f.prometheus, EnableActions: f.enableActions,
		AdminAddrs: map[int]string{}}
	if len(o.ZK) == 0 {
		return o, usageError{errors.New("dashboard: no ZooKeeper given: pass --zk host:port[,host:port...] or set METAQ_ZK")}
	}
	for _, ba := range f.brokerAdmin {
		id, addr, ok := strings.Cut(ba, "=")
		n, err := strconv.Atoi(id)
		if _, _, herr := net.SplitHostPort(addr); !ok || err != nil || n < 0 || herr != nil {
			return o, usageError{fmt.Errorf("--broker-admin %q: want ID=HOST:PORT, e.g. 0=127.0.0.1:9100", ba)}
		}
		o.AdminAddrs[n] = addr
	}
	if f.tokenFile != "" {
		tok, err := secretfile.Read(f.tokenFile)
		if err != nil {
			return o, fmt.Errorf("--admin-token-file: %w", err)
		}
		if o.AdminToken = strings.TrimSpace(tok); o.AdminToken == "" {
			return o, fmt.Errorf("--admin-token-file %s is empty: put the brokers' admin token in it", f.tokenFile)
		}
	}
	if f.enableActions && len(o.AdminAddrs) > 0 && o.AdminToken == "" {
		return o, usageError{errors.New("--broker-admin with --enable-actions needs --admin-token-file (the brokers' admin endpoints require the token)")}
	}
	if !f.enableActions && (f.tokenFile != "" || len(f.brokerAdmin) > 0) {
		return o, usageError{errors.New("--admin-token-file and --broker-admin are only used with --enable-actions")}
	}
	return o, nil
}

// runDashboard serves until ctx ends; ready, if set, gets the bound address.
func runDashboard(ctx context.Context, g *globals, f dashboardFlags, out io.Writer, ready func(addr string)) error {
	opts, err := dashboardOptions(g, f)
	if err != nil {
		return err
	}
	opts.Logger = g.logger()
	srv, err := dashboard.New(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("dashboard: listen on %s: %w (choose another --listen address)", f.listen, err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	collected := make(chan error, 1)
	go func() { collected <- srv.Run(ctx) }()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	fmt.Fprintf(out, "dashboard: http://%s/ (ZooKeeper %s, %s)\n", ln.Addr(), strings.Join(opts.ZK, ","),
		map[bool]string{true: "actions enabled", false: "read-only"}[opts.EnableActions])
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case <-ctx.Done():
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = hs.Shutdown(sctx)
		scancel()
		err = <-served
	case err = <-served:
	}
	cancel()
	<-collected
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("dashboard: %w", err)
	}
	return nil
}
