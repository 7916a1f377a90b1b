package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/config"
)

// snapshotter is what the admin server needs of a broker.
type snapshotter interface {
	Snapshot() broker.Snapshot
}

// adminServer serves /metrics (Prometheus) and /healthz for `metaq broker
// --admin`, and the operator's mutating endpoints (admin_auth.go).
type adminServer struct {
	srv    *http.Server
	mux    *http.ServeMux
	ln     net.Listener
	scheme string // http or https
	auth   *adminAuth
	done   chan struct{}
	err    error // of Serve, read after done
}

// adminAddr picks the admin listen address: --admin, else
// <adminHost>:<adminPort> (adminHost defaults to 127.0.0.1), else none.
func adminAddr(flag, adminHost string, adminPort int) string {
	if flag != "" {
		return flag
	}
	if adminHost == "" {
		adminHost = config.DefaultAdminHost
	}
	if adminPort > 0 {
		return net.JoinHostPort(adminHost, strconv.Itoa(adminPort))
	}
	return ""
}

// startAdmin binds addr and serves metrics of b (and the extra collectors)
// until Close, without TLS and with mutating endpoints refused.
func startAdmin(addr string, b snapshotter, log *slog.Logger, extra ...prometheus.Collector) (*adminServer, error) {
	return startAdminWith(addr, b, adminSecurity{}, log, extra...)
}

// startAdminWith is startAdmin with TLS and the mutating endpoints'
// authentication set by sec.
func startAdminWith(addr string, b snapshotter, sec adminSecurity, log *slog.Logger, extra ...prometheus.Collector) (*adminServer, error) {
	auth, err := newAdminAuth(sec, log)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen on %s: %w (choose another --admin address or adminPort)", addr, err)
	}
	scheme := "http"
	if sec.TLS != nil {
		ln, scheme = tls.NewListener(ln, sec.TLS.OptionalClientCertConfig()), "https"
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newBrokerCollector(b),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(extra...)
	mux := http.NewServeMux()
	if ps, ok := b.(partitionSwitch); ok {
		mux.HandleFunc("POST /partitions/{topic}/{partition}/{action}", auth.require(partitionHandler(ps, log)))
	}
	// Go profiles (CPU, heap, goroutines...) reveal internals and cost CPU:
	// behind the admin token like the mutating endpoints.
	mux.HandleFunc("GET /debug/pprof/", auth.require(pprof.Index))
	mux.HandleFunc("GET /debug/pprof/profile", auth.require(pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/trace", auth.require(pprof.Trace))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		ok, reason := healthOf(b.Snapshot())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, reason)
	})
	a := &adminServer{ln: ln, mux: mux, scheme: scheme, auth: auth, done: make(chan struct{}),
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}} // e.g. failed TLS handshakes
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			a.err = err
			log.Error("admin server stopped", "err", err)
		}
	}()
	log.Info("admin endpoint listening", "addr", a.Addr(), "metrics", scheme+"://"+a.Addr()+"/metrics")
	return a, nil
}

// Addr is the bound address.
// Mount serves h under pattern (e.g. "/dashboard/") beside the admin
// endpoints; read-only handlers only: it is not behind the admin token.
func (a *adminServer) Mount(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

func (a *adminServer) Addr() string { return a.ln.Addr().String() }

// Reload reads the bearer token file again (SIGHUP); the TLS material is
// the broker's and reloads with it.
func (a *adminServer) Reload() error { return a.auth.reload() }

// Close stops the server and waits for its goroutine.
func (a *adminServer) Close(ctx context.Context) error {
	err := a.srv.Shutdown(ctx)
	<-a.done
	return errors.Join(err, a.err)
}

// healthOf says whether a broker is healthy: serving, ZooKeeper connected
// when enabled, and no failed partition.
func healthOf(s broker.Snapshot) (bool, string) {
	if !s.Serving {
		return false, "not serving (starting or shutting down)"
	}
	if s.ZooKeeper.Enabled && !s.ZooKeeper.Connected {
		return false, "ZooKeeper " + s.ZooKeeper.State
	}
	for _, p := range s.Partitions {
		if p.Err != "" {
			return false, fmt.Sprintf("partition %s-%d failed: %s", p.Topic, p.Partition, p.Err)
		}
	}
	return true, "ok"
}

// zkStates are the values of the metaq_zookeeper_state label.
var zkStates = []string{"disabled", "not connected", "connected", "suspended", "reconnected", "lost", "closed"}

// brokerCollector turns one Snapshot per scrape into metrics, so the broker
// needs no Prometheus code and nothing runs between scrapes.
type brokerCollector struct {
	b snapshotter

	info, uptime, serving                              *prometheus.Desc
	puts, gets, offsets, putBytes, getBytes            *prometheus.Desc
	getMisses, putFailures, txBegin, txCommit, txRollb *prometheus.Desc
	conns, connsTotal, partitions, zkState, zkUp       *prometheus.Desc
	topicMsgs, topicBytes, topicPuts, topicGets        *prometheus.Desc
	partMin, partMax, partMsgs, partFailed             *prometheus.Desc
	panics, buffered, paused                           *prometheus.Desc
	replLag, replInSync                                *prometheus.Desc
	putBatches, putsJoined                             *prometheus.Desc
	clogUp, clogBytes, clogCommits, clogCheckpoints    *prometheus.Desc
}

func newBrokerCollector(b snapshotter) *brokerCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("metaq_"+name, help, labels, nil)
	}
	return &brokerCollector{b: b,
		info:        d("broker_info", "Broker identity; always 1.", "broker_id", "version", "uri"),
		uptime:      d("uptime_seconds", "Seconds since the broker was created."),
		serving:     d("serving", "1 while the broker accepts requests."),
		puts:        d("puts_total", "Messages put, failed puts included."),
		gets:        d("gets_total", "get requests."),
		offsets:     d("offset_requests_total", "offset requests."),
		putBytes:    d("put_bytes_total", "Bytes of put data stored."),
		getBytes:    d("get_bytes_total", "Message bytes served to consumers."),
		getMisses:   d("get_misses_total", "get requests that found no message."),
		putFailures: d("put_failures_total", "Puts refused or failed."),
		txBegin:     d("tx_begin_total", "Transactions begun.", "kind"),
		txCommit:    d("tx_commit_total", "Transactions committed."),
		txRollb:     d("tx_rollback_total", "Transactions rolled back."),
		conns:       d("connections", "Open client connections."),
		connsTotal:  d("connections_total", "Client connections accepted."),
		partitions:  d("partitions", "Partitions open on this broker."),
		zkState:     d("zookeeper_state", "ZooKeeper session state: 1 for the current state.", "state"),
		zkUp:        d("zookeeper_connected", "1 when a ZooKeeper session is established (or ZooKeeper is disabled: 0)."),
		topicMsgs:   d("topic_messages", "Messages stored in a topic's partitions on this broker.", "topic"),
		topicBytes:  d("topic_bytes", "Bytes stored in a topic's partitions on this broker.", "topic"),
		topicPuts:   d("topic_puts_total", "Messages put to a topic.", "topic"),
		topicGets:   d("topic_gets_total", "get requests for a topic.", "topic"),
		partMin:     d("partition_min_offset", "Earliest readable offset of a partition.", "topic", "partition"),
		partMax:     d("partition_max_offset", "Visible end offset of a partition.", "topic", "partition"),
		partMsgs:    d("partition_messages", "Messages stored in a partition.", "topic", "partition"),
		partFailed:  d("partition_failed", "1 when a partition has a sticky I/O error.", "topic", "partition"),
		panics:      d("handler_panics_total", "Request handlers that panicked (the connection was closed, the broker kept serving)."),
		buffered:    d("output_buffered_bytes", "Replies not yet sent to clients, over all connections."),
		paused:      d("paused_connections", "Connections not read until their unsent replies drain."),
		replLag:     d("replica_lag_bytes", "On a master: bytes a follower has not acknowledged yet.", "member"),
		replInSync:  d("replica_in_sync", "On a master: 1 while a follower is in the in-sync set.", "member"),
		putBatches:  d("put_batches_total", "Store appends made for puts (one per connection read and partition, unless the puts joined a batch still queued); puts_total / put_batches_total is the mean batch."),
		putsJoined:  d("puts_joined_total", "Puts added to a batch of the same connection still waiting in the partition's queue."),
		clogUp: d("commit_log_up", "1 while commit cycles of several partitions of a data directory commit through its commit log; "+
			"0 when it is off (commitLog=false) or turned itself off after an I/O error (then cycles sync their segments; see the broker log).", "dir"),
		clogBytes:       d("commit_log_bytes_total", "Bytes appended to a data directory's commit log.", "dir"),
		clogCommits:     d("commit_log_commits_total", "Commit cycles made durable by one fdatasync of a data directory's commit log.", "dir"),
		clogCheckpoints: d("commit_log_checkpoints_total", "Checkpoints (one syncfs, then the covered log files removed) of a data directory's commit log.", "dir"),
	}
}

// Describe implements prometheus.Collector.
func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.info, c.uptime, c.serving, c.puts, c.gets, c.offsets, c.putBytes,
		c.getBytes, c.getMisses, c.putFailures, c.txBegin, c.txCommit, c.txRollb, c.conns, c.connsTotal,
		c.partitions, c.zkState, c.zkUp, c.topicMsgs, c.topicBytes, c.topicPuts, c.topicGets,
		c.partMin, c.partMax, c.partMsgs, c.partFailed, c.panics, c.buffered, c.paused, c.replLag, c.replInSync, c.putBatches, c.putsJoined,
		c.clogUp, c.clogBytes, c.clogCommits, c.clogCheckpoints} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.b.Snapshot()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.info, 1, strconv.Itoa(s.BrokerID), s.Version, s.URI)
	gauge(c.uptime, s.Uptime.Seconds())
	gauge(c.serving, b2f(s.Serving))
	counter(c.puts, s.Puts)
	counter(c.gets, s.Gets)
	counter(c.offsets, s.Offsets)
	counter(c.putBytes, s.PutBytes)
	counter(c.getBytes, s.GetBytes)
	counter(c.getMisses, s.GetMisses)
	counter(c.putFailures, s.PutFailures)
	counter(c.txBegin, s.TxBegin, "local")
	counter(c.txBegin, s.TxXABegin, "xa")
	counter(c.txCommit, s.TxCommit)
	counter(c.txRollb, s.TxRollback)
	gauge(c.conns, float64(s.Connections))
	counter(c.connsTotal, s.ConnectionsTotal)
	gauge(c.partitions, float64(len(s.Partitions)))
	counter(c.panics, s.HandlerPanics)
	counter(c.putBatches, s.PutBatches)
	counter(c.putsJoined, s.PutsJoined)
	gauge(c.buffered, float64(s.BufferedBytes))
	gauge(c.paused, float64(s.PausedConnections))
	for _, st := range zkStates {
		gauge(c.zkState, b2f(st == s.ZooKeeper.State), st)
	}
	gauge(c.zkUp, b2f(s.ZooKeeper.Connected))
	for _, l := range s.CommitLogs {
		gauge(c.clogUp, b2f(l.On), l.Dir)
		counter(c.clogBytes, l.Bytes, l.Dir)
		counter(c.clogCommits, l.Commits, l.Dir)
		counter(c.clogCheckpoints, l.Checkpoints, l.Dir)
	}
	for _, t := range s.Topics {
		gauge(c.topicMsgs, float64(t.Messages), t.Topic)
		gauge(c.topicBytes, float64(t.Bytes), t.Topic)
		counter(c.topicPuts, t.Puts, t.Topic)
		counter(c.topicGets, t.Gets, t.Topic)
	}
	for _, r := range s.Replicas {
		m := strconv.Itoa(r.Member)
		gauge(c.replLag, float64(r.LagBytes), m)
		gauge(c.replInSync, b2f(r.InSync), m)
	}
	for _, p := range s.Partitions {
		part := strconv.Itoa(p.Partition)
		gauge(c.partMin, float64(p.MinOffset), p.Topic, part)
		gauge(c.partMax, float64(p.MaxOffset), p.Topic, part)
		gauge(c.partMsgs, float64(p.Messages), p.Topic, part)
		gauge(c.partFailed, b2f(p.Err != ""), p.Topic, part)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// partitionSwitch is the operator's maintenance switch of a broker.
type partitionSwitch interface {
	ClosePartition(topic string, part int) error
	OpenPartition(topic string, part int)
}

// partitionHandler serves POST /partitions/{topic}/{partition}/close|open:
// a closed partition answers puts and gets with 403 until opened again.
func partitionHandler(ps partitionSwitch, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		topic, action := r.PathValue("topic"), r.PathValue("action")
		part, err := strconv.Atoi(r.PathValue("partition"))
		if err != nil || part < 0 {
			http.Error(w, "partition must be a non-negative number, e.g. POST /partitions/orders/0/close", http.StatusBadRequest)
			return
		}
		switch action {
		case "close":
			if err := ps.ClosePartition(topic, part); err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
		case "open":
			ps.OpenPartition(topic, part)
		default:
			http.Error(w, "action must be close or open", http.StatusNotFound)
			return
		}
		log.Warn("operator changed a partition", "topic", topic, "partition", part, "action", action)
		fmt.Fprintf(w, "%s-%d %sd\n", topic, part, strings.TrimSuffix(action, "e"))
	}
}

// fsyncMetrics times every segment fsync of the broker's store.
type fsyncMetrics struct {
	seconds prometheus.Histogram
	errors  prometheus.Counter
}

func newFsyncMetrics() *fsyncMetrics {
	return &fsyncMetrics{
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "metaq_fsync_seconds",
			Help:    "Time of each segment fsync (group commit: one per write cycle of a partition).",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 14)}), // 50 µs .. ~0.4 s
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "metaq_fsync_errors_total",
			Help: "Failed segment fsyncs (the partition then refuses writes until a restart)."}),
	}
}

// observe is a store.Options.OnSync hook.
func (m *fsyncMetrics) observe(_ string, _ int, took time.Duration, err error) {
	m.seconds.Observe(took.Seconds())
	if err != nil {
		m.errors.Inc()
	}
}

func (m *fsyncMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.seconds, m.errors}
}
