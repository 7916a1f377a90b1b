package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/metaq-go/metaq/internal/clusterview"
	"github.com/metaq-go/metaq/protocol"
)

// page is what every template gets.
type page struct {
	Title   string
	Nav     string
	Base    string
	Refresh int // seconds between in-place refreshes (0: none)
	Actions bool
	CSRF    string
	Prom    string
	Snap    *Snapshot
	Data    any
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static())))
	mux.HandleFunc("GET /{$}", s.overview)
	mux.HandleFunc("GET /topics", s.topics)
	mux.HandleFunc("GET /topics/{topic}", s.topic)
	mux.HandleFunc("GET /groups", s.groups)
	mux.HandleFunc("GET /groups/{group}", s.groups)
	mux.HandleFunc("GET /transactions", s.transactions)
	mux.HandleFunc("GET /health", s.health)
	if s.opts.EnableActions {
		mux.HandleFunc("POST /actions/reset", s.actionReset)
		mux.HandleFunc("POST /actions/close", s.actionClose)
		mux.HandleFunc("POST /actions/promote", s.actionPromote)
	}
	var h http.Handler = mux
	if s.opts.BasePath != "" {
		h = http.StripPrefix(strings.TrimRight(s.opts.BasePath, "/"), mux)
	}
	return securityHeaders(h)
}

// securityHeaders forbids framing and any resource from elsewhere: the
// pages use only their own stylesheet and script.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

// wantsJSON tells a JSON client (Accept: application/json) from a browser.
func wantsJSON(r *http.Request) bool {
	for _, a := range strings.Split(r.Header.Get("Accept"), ",") {
		mt := strings.TrimSpace(strings.Split(a, ";")[0])
		if mt == "text/html" {
			return false
		}
		if mt == "application/json" {
			return true
		}
	}
	return false
}

// render answers with the page's template, or its JSON twin.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title string, snap *Snapshot, data, twin any) {
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(twin)
		return
	}
	nav := name
	if name == "topic" {
		nav = "topics"
	}
	p := page{Title: title, Nav: nav, Base: strings.TrimRight(s.opts.BasePath, "/"), Actions: s.opts.EnableActions,
		CSRF: s.csrf, Prom: s.opts.Prometheus, Snap: snap, Data: data}
	if name != "confirm" && name != "result" {
		p.Refresh = max(int(s.opts.Interval/time.Second), 1)
	}
	var buf bytes.Buffer
	if err := s.pages.sets[name].Execute(&buf, p); err != nil {
		s.log.Error("dashboard: render", "page", name, "err", err)
		http.Error(w, "dashboard: could not render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type overviewData struct{ Up, Stalled int }

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	snap := s.Snapshot()
	var d overviewData
	for _, b := range snap.Brokers {
		if b.Status == "up" {
			d.Up++
		}
	}
	for _, g := range snap.Groups {
		d.Stalled += g.Stalled
	}
	twin := struct {
		At          time.Time                `json:"at"`
		Stale       bool                     `json:"stale"`
		Problems    []string                 `json:"problems"`
		ZooKeeper   ZooKeeperView            `json:"zookeeper"`
		Brokers     []BrokerView             `json:"brokers"`
		Replication []clusterview.ReplicaSet `json:"replication"`
		Topics      int                      `json:"topics"`
		Groups      int                      `json:"groups"`
		Prepared    int                      `json:"prepared_transactions"`
	}{snap.At, snap.Stale, snap.Problems, snap.ZooKeeper, snap.Brokers, snap.Replication, len(snap.Topics), len(snap.Groups), len(snap.Tx)}
	s.render(w, r, http.StatusOK, "overview", "Cluster", snap, d, twin)
}

func (s *Server) topics(w http.ResponseWriter, r *http.Request) {
	snap := s.Snapshot()
	s.render(w, r, http.StatusOK, "topics", "Topics", snap, nil, nonNil(snap.Topics))
}

// topicData is the topic page: the snapshot's view plus a live `topics
// describe` (per-partition offsets asked now).
type topicData struct {
	Name        string                       `json:"topic"`
	View        *TopicView                   `json:"rates,omitempty"`
	Description clusterview.TopicDescription `json:"description"`
	Groups      []string                     `json:"groups"`
	Error       string                       `json:"error,omitempty"`
}

func (s *Server) topic(w http.ResponseWriter, r *http.Request) {
	snap := s.Snapshot()
	name := r.PathValue("topic")
	d := topicData{Name: name, Groups: []string{}}
	for i := range snap.Topics {
		if snap.Topics[i].Topic == name {
			d.View = &snap.Topics[i]
		}
	}
	for _, g := range snap.Groups {
		if slices.Contains(g.Topics, name) {
			d.Groups = append(d.Groups, g.Group)
		}
	}
	status := http.StatusOK
	if err := protocol.ValidTopic(name); err != nil {
		d.Error, status = err.Error(), http.StatusBadRequest
	} else if desc, err := s.describeTopic(r.Context(), name); err != nil {
		d.Error = err.Error()
		if d.View == nil {
			status = http.StatusNotFound
		}
	} else {
		d.Description = desc
	}
	s.render(w, r, status, "topic", "Topic "+name, snap, d, d)
}

func (s *Server) describeTopic(ctx context.Context, topic string) (clusterview.TopicDescription, error) {
	sess, err := s.session(ctx)
	if err != nil {
		return clusterview.TopicDescription{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*s.opts.Timeout)
	defer cancel()
	return clusterview.DescribeTopic(ctx, sess, s.paths, topic)
}

type groupsData struct {
	One    bool
	Groups []GroupView
	Error  string
}

func (s *Server) groups(w http.ResponseWriter, r *http.Request) {
	snap := s.Snapshot()
	name := r.PathValue("group")
	if name == "" {
		s.render(w, r, http.StatusOK, "groups", "Consumer groups", snap, groupsData{Groups: snap.Groups}, nonNil(snap.Groups))
		return
	}
	g, ok := snap.Group(name)
	if !ok {
		d := groupsData{Error: "consumer group " + name + " is not in the latest snapshot (it does not exist, or appeared since: the page refreshes)"}
		s.render(w, r, http.StatusNotFound, "groups", "Consumer group", snap, d, map[string]string{"error": d.Error})
		return
	}
	s.render(w, r, http.StatusOK, "groups", "Group "+name, snap, groupsData{One: true, Groups: []GroupView{g}}, g)
}

func (s *Server) transactions(w http.ResponseWriter, r *http.Request) {
	snap := s.Snapshot()
	s.render(w, r, http.StatusOK, "transactions", "Transactions", snap, nil, nonNil(snap.Tx))
}

// health mirrors `metaq healthcheck --zk`: 503 while a registered broker
// does not answer, none is registered, or ZooKeeper cannot be read.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	snap := s.Snapshot()
	rep := snap.Health
	if rep.Brokers == nil {
		rep.Brokers = []clusterview.HealthResult{}
	}
	if snap.Stale || snap.At.IsZero() {
		rep.Healthy = false
		rep.Problem = strings.Join(snap.Problems, "; ")
	}
	status := http.StatusOK
	if !rep.Healthy {
		status = http.StatusServiceUnavailable
	}
	s.render(w, r, status, "health", "Health", snap, rep, rep)
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}
