package dashboard

import (
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/clusterview"
	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes"
)

// Every action is two POSTs: the first (from a button on a page) shows what
// will happen — for an offset reset the dry-run plan — and a confirm form;
// only the second, with confirm=yes, changes anything. Both carry the
// per-process form token (csrf), which a page of another origin cannot read.

type field struct{ Name, Value string }

type confirmData struct {
	What, Warning, Action, Button, Back string
	Fields                              []field
	Plan                                *clusterview.OffsetPlan
}

type resultData struct {
	What, Message, Back string
	Err                 bool
	Plan                *clusterview.OffsetPlan
}

// form parses the POST and checks its token; false means it answered.
func (s *Server) form(w http.ResponseWriter, r *http.Request) bool {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "dashboard: unreadable form: "+err.Error(), http.StatusBadRequest)
		return false
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(s.csrf)) != 1 {
		http.Error(w, "dashboard: missing or stale form token: reload the page (the dashboard may have restarted) and try again", http.StatusForbidden)
		return false
	}
	return true
}

func (s *Server) confirm(w http.ResponseWriter, r *http.Request, d confirmData) {
	s.render(w, r, http.StatusOK, "confirm", "Confirm", s.Snapshot(), d, d)
}

func (s *Server) result(w http.ResponseWriter, r *http.Request, what, back string, plan *clusterview.OffsetPlan, err error, ok string) {
	d := resultData{What: what, Back: back, Plan: plan, Message: ok}
	status := http.StatusOK
	if err != nil {
		d.Err, d.Message, status = true, err.Error(), http.StatusConflict
		s.log.Warn("dashboard: action failed", "action", what, "err", err)
	} else {
		s.log.Warn("dashboard: operator action", "action", what, "result", ok)
	}
	s.render(w, r, status, "result", what, s.Snapshot(), d, d)
}

// resetSpec reads the reset form: topic ("" = all), mode, value, partition.
func resetSpec(f url.Values) (clusterview.ResetSpec, error) {
	spec := clusterview.ResetSpec{AllTopics: f.Get("topic") == ""}
	if t := f.Get("topic"); t != "" {
		if err := protocol.ValidTopic(t); err != nil {
			return spec, err
		}
		spec.Topics = []string{t}
	}
	if pn := strings.TrimSpace(f.Get("partition")); pn != "" {
		if _, _, err := coordinator.ParsePartitionName(pn); err != nil {
			return spec, fmt.Errorf("partition %q: want <brokerId>-<partition>, e.g. 0-1", pn)
		}
		spec.Partitions = []string{pn}
	}
	v := strings.TrimSpace(f.Get("value"))
	var err error
	switch f.Get("mode") {
	case "earliest":
		spec.Mode = clusterview.ResetEarliest
	case "latest":
		spec.Mode = clusterview.ResetLatest
	case "offset":
		spec.Mode = clusterview.ResetOffset
		if spec.ToOffset, err = strconv.ParseInt(v, 10, 64); err != nil || spec.ToOffset < 0 {
			return spec, fmt.Errorf("offset %q: want a non-negative byte offset", v)
		}
	case "shift":
		spec.Mode = clusterview.ResetShift
		if spec.ShiftBy, err = strconv.ParseInt(v, 10, 64); err != nil {
			return spec, fmt.Errorf("shift %q: want a number of bytes, negative to go back", v)
		}
	case "time":
		spec.Mode = clusterview.ResetTime
		if spec.ToTime, err = time.Parse(time.RFC3339, v); err != nil {
			return spec, fmt.Errorf("time %q: want RFC3339, e.g. 2024-05-01T12:00:00Z", v)
		}
	default:
		return spec, fmt.Errorf("mode %q: want earliest, latest, offset, shift or time", f.Get("mode"))
	}
	return spec, nil
}

// actionReset previews, then (confirmed) writes an offset reset through
// ZooKeeper exactly like `metaq groups reset-offsets`.
func (s *Server) actionReset(w http.ResponseWriter, r *http.Request) {
	if !s.form(w, r) {
		return
	}
	group := r.PostForm.Get("group")
	back := "/groups/" + url.PathEscape(group)
	what := "reset offsets of group " + group
	spec, err := resetSpec(r.PostForm)
	if err == nil && !protocol.ValidGroup(group) {
		err = fmt.Errorf("group %q is not a valid group name", group)
	}
	if err != nil {
		s.result(w, r, what, back, nil, err, "")
		return
	}
	execute := r.PostForm.Get("confirm") == "yes"
	var warning string
	plan, err := withSession(s, r.Context(), 5, func(ctx context.Context, sess *zkrecipes.Session) (clusterview.OffsetPlan, error) {
		return clusterview.RunOffsetChange(ctx, sess, s.paths, group, execute, func(ctx context.Context) ([]clusterview.OffsetChange, error) {
			return clusterview.PlanReset(ctx, sess, s.paths, group, spec, s.opts.Timeout)
		}, func(err error) { warning = err.Error() + " — confirming will be refused until then" })
	})
	if execute || err != nil {
		s.result(w, r, what, back, &plan, err, fmt.Sprintf("%d partition(s) planned; offsets written", len(plan.Partitions)))
		return
	}
	fields := []field{{"group", group}}
	for _, k := range []string{"topic", "mode", "value", "partition"} {
		fields = append(fields, field{k, r.PostForm.Get(k)})
	}
	s.confirm(w, r, confirmData{What: what, Warning: warning, Action: "/actions/reset", Button: "write these offsets",
		Back: back, Fields: fields, Plan: &plan})
}

// actionClose closes a partition on its broker's admin endpoint (a closed
// partition answers puts and gets with 403 until opened again).
func (s *Server) actionClose(w http.ResponseWriter, r *http.Request) {
	if !s.form(w, r) {
		return
	}
	topic, pn := r.PostForm.Get("topic"), r.PostForm.Get("partition")
	back := "/topics/" + url.PathEscape(topic)
	what := "close partition " + pn + " of topic " + topic
	id, part, err := coordinator.ParsePartitionName(pn)
	if err == nil {
		err = protocol.ValidTopic(topic)
	}
	addr := s.opts.AdminAddrs[id]
	if err == nil && addr == "" {
		err = fmt.Errorf("no admin endpoint is known for broker %d: start the dashboard with --broker-admin %d=HOST:PORT", id, id)
	}
	if err != nil {
		s.result(w, r, what, back, nil, err, "")
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		s.confirm(w, r, confirmData{What: what, Action: "/actions/close", Button: "close the partition", Back: back,
			Warning: "Producers and consumers of " + pn + " get 403 until the partition is opened again (POST /partitions/<topic>/<n>/open on the broker's admin port).",
			Fields:  []field{{"topic", topic}, {"partition", pn}}})
		return
	}
	err = s.adminPost(r.Context(), addr, "/partitions/"+url.PathEscape(topic)+"/"+strconv.Itoa(part)+"/close")
	s.result(w, r, what, back, nil, err, "broker "+strconv.Itoa(id)+" closed the partition")
}

// adminPost sends an authorized POST to a broker's admin endpoint.
func (s *Server) adminPost(ctx context.Context, addr, path string) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	if s.opts.AdminToken != "" {
		req.Header.Set("Authorization", "Bearer "+s.opts.AdminToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("admin endpoint %s: %w (is --broker-admin right and the broker's --admin listening?)", addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("admin endpoint %s refused the request (%s): check --admin-token-file against the broker's admin token", addr, resp.Status)
	case resp.StatusCode/100 != 2:
		return fmt.Errorf("admin endpoint %s answered %s: %s", addr, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// actionPromote asks for a planned switchover, like `metaq cluster promote
// --wait 0`; the overview shows when it is done.
func (s *Server) actionPromote(w http.ResponseWriter, r *http.Request) {
	if !s.form(w, r) {
		return
	}
	id, err1 := strconv.Atoi(r.PostForm.Get("broker"))
	member, err2 := strconv.Atoi(r.PostForm.Get("member"))
	what := fmt.Sprintf("promote member %d of broker %d", member, id)
	if err1 != nil || err2 != nil || id < 0 || member < 0 {
		s.result(w, r, "promote", "/", nil, fmt.Errorf("broker %q member %q: want two non-negative numbers", r.PostForm.Get("broker"), r.PostForm.Get("member")), "")
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		s.confirm(w, r, confirmData{What: what, Action: "/actions/promote", Button: "switch over", Back: "/",
			Warning: "The master stops accepting puts until the member has every acknowledged message, then hands over (docs/REPLICATION.md).",
			Fields:  []field{{"broker", strconv.Itoa(id)}, {"member", strconv.Itoa(member)}}})
		return
	}
	res, err := withSession(s, r.Context(), 2, func(ctx context.Context, sess *zkrecipes.Session) (clusterview.PromoteResult, error) {
		return clusterview.Promote(ctx, sess, s.paths, id, member, 0)
	})
	s.result(w, r, what, "/", nil, err, "switchover "+res.Status+"; the Cluster page shows the new master once it leads")
}
