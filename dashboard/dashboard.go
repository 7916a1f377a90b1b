// Package dashboard is metaq's web UI as a library: a read-only view of a
// cluster (overview, topics, a topic's partitions, consumer groups with lag,
// prepared XA transactions, health), server-rendered with embedded assets
// and a JSON twin of every page (same URL, Accept: application/json), plus
// optional operator actions behind a confirmation step.
//
// A Server collects a Snapshot every Options.Interval from ZooKeeper and
// the brokers (through internal/clusterview, the code behind the `metaq`
// commands, so both show the same numbers) and keeps rate and lag history
// in bounded rings. Pages render from the latest snapshot: a dead broker or
// ZooKeeper never blocks a page, the page says what is down instead.
//
//	srv, err := dashboard.New(dashboard.Options{ZK: []string{"127.0.0.1:2181"}})
//	go srv.Run(ctx)
//	http.ListenAndServe("127.0.0.1:9180", srv.Handler())
package dashboard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
)

// Options configure a Server. ZK (or Session) is required.
type Options struct {
	ZK     []string // ZooKeeper servers, host:port each
	ZKRoot string   // cluster root; default /meta
	// Session, when set, is used instead of dialling ZK (e.g. a broker's own
	// session when the dashboard is mounted on its admin port); the caller
	// owns and closes it.
	Session *zkrecipes.Session
	// Timeout bounds one request to ZooKeeper or a broker; default 5s.
	Timeout time.Duration
	// Interval between collections; default 5s.
	Interval time.Duration
	// History is the number of samples kept per series; default 120
	// (10 minutes at the default interval).
	History int
	// StallAfter: a partition with lag whose committed offset has not moved
	// for this long is highlighted as stalled; default 1m.
	StallAfter time.Duration
	// Prometheus is a Prometheus base URL; pages then link to graphs there.
	Prometheus string
	// EnableActions allows offset resets, closing partitions and promoting
	// slaves (each behind a confirmation page). Off: read-only.
	EnableActions bool
	// AdminToken is sent as "Authorization: Bearer <token>" to brokers'
	// admin endpoints; never logged or shown.
	AdminToken string
	// AdminAddrs maps broker ids to their admin endpoint host:port (where
	// close partition is sent).
	AdminAddrs map[int]string
	// BasePath is the URL prefix the handler is mounted under ("" or e.g.
	// "/dashboard"), used in links.
	BasePath string
	Logger   *slog.Logger
}

// Server collects snapshots and serves the pages.
type Server struct {
	opts  Options
	paths coordinator.Paths
	log   *slog.Logger
	csrf  string
	pages *pages

	mu   sync.Mutex // guards snap and state
	snap *Snapshot
	st   *collectState

	sessMu sync.Mutex // guards sess and closed: dialled by the collector, read by actions
	sess   *zkrecipes.Session
	closed bool // Close was called: no new session
}

// ErrNoZooKeeper is returned by New without ZK servers or a session.
var ErrNoZooKeeper = errors.New("dashboard: no ZooKeeper: give Options.ZK (host:port of the ensemble) or Options.Session")

// New validates opts and returns a Server; call Run to start collecting.
func New(opts Options) (*Server, error) {
	if len(opts.ZK) == 0 && opts.Session == nil {
		return nil, ErrNoZooKeeper
	}
	if opts.ZKRoot == "" {
		opts.ZKRoot = "/meta"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.History <= 0 {
		opts.History = 120
	}
	if opts.StallAfter <= 0 {
		opts.StallAfter = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.EnableActions && opts.AdminToken == "" && len(opts.AdminAddrs) > 0 {
		return nil, errors.New("dashboard: actions on brokers' admin endpoints need the admin token (--admin-token-file)")
	}
	var tok [32]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, err
	}
	pg, err := newPages()
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, paths: coordinator.NewPaths(opts.ZKRoot), log: opts.Logger,
		csrf: hex.EncodeToString(tok[:]), pages: pg, st: newCollectState(opts.History)}
	s.sess = opts.Session
	s.snap = &Snapshot{Problems: []string{"collecting: the first snapshot is not ready yet"}}
	return s, nil
}

// Run collects a snapshot now and every Interval until ctx ends, then
// closes the ZooKeeper session it opened.
func (s *Server) Run(ctx context.Context) error {
	defer s.Close()
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		s.CollectOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Close closes the ZooKeeper session the server opened (not one given in
// Options.Session). Run closes it when it returns; a caller that only uses
// CollectOnce calls Close itself.
func (s *Server) Close() {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	if s.sess != nil && s.sess != s.opts.Session {
		s.sess.Close()
	}
	s.sess, s.closed = nil, true
}

// Snapshot returns the latest snapshot (never nil; do not modify it).
func (s *Server) Snapshot() *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

// session returns the ZooKeeper session, dialling one if there is none.
func (s *Server) session(ctx context.Context) (*zkrecipes.Session, error) {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	if s.sess != nil {
		return s.sess, nil
	}
	if s.closed {
		return nil, errors.New("dashboard: closed")
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	sess, err := zkrecipes.Connect(ctx, s.opts.ZK, zkrecipes.WithLogger(s.log))
	if err != nil {
		return nil, err
	}
	s.sess = sess
	return sess, nil
}

// Handler serves the dashboard: pages, their JSON twins, static assets
// and, with EnableActions, the actions.
func (s *Server) Handler() http.Handler { return s.routes() }

// withSession runs fn with the dashboard's ZooKeeper session and a context
// bounded to ops × Timeout.
func withSession[T any](s *Server, ctx context.Context, ops int, fn func(context.Context, *zkrecipes.Session) (T, error)) (T, error) {
	var zero T
	sess, err := s.session(ctx)
	if err != nil {
		return zero, fmt.Errorf("ZooKeeper %s: %w", strings.Join(s.opts.ZK, ","), err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(ops)*s.opts.Timeout)
	defer cancel()
	return fn(ctx, sess)
}
