package dashboard

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/metaq-go/metaq/internal/clusterview"
)

// newTestServer serves snap without ZooKeeper (nothing collects).
func newTestServer(t *testing.T, snap *Snapshot, actions bool) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(Options{ZK: []string{"127.0.0.1:1"}, EnableActions: actions})
	if err != nil {
		t.Fatal(err)
	}
	s.snap = snap
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return s, hs
}

func get(t *testing.T, u, accept string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func TestNamesAreEscapedInEveryContext(t *testing.T) {
	const group = `g"><script>alert(1)</script>`
	snap := &Snapshot{At: time.Now(), Groups: []GroupView{{GroupState: clusterview.GroupState{Group: group,
		Members: []clusterview.GroupMember{{ID: "<img src=x onerror=alert(2)>", Host: "h'<b>"}}, Topics: []string{"t"}}}}}
	_, hs := newTestServer(t, snap, true)
	for _, u := range []string{hs.URL + "/groups", hs.URL + "/groups/" + url.PathEscape(group)} {
		code, _, body := get(t, u, "")
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", u, code, body)
		}
		for _, raw := range []string{"<script>alert", "<img src", "h'<b>"} {
			if strings.Contains(body, raw) {
				t.Errorf("GET %s: the page contains %q unescaped", u, raw)
			}
		}
		if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("GET %s: the group name is not shown escaped", u)
		}
	}
}

func TestEveryPageHasAJSONTwin(t *testing.T) {
	snap := &Snapshot{At: time.Now(), Topics: []TopicView{{Topic: "orders"}}, Health: clusterview.HealthReport{Healthy: true}}
	_, hs := newTestServer(t, snap, false)
	for _, p := range []string{"/", "/topics", "/groups", "/transactions", "/health"} {
		code, ct, body := get(t, hs.URL+p, "application/json")
		if code != http.StatusOK || ct != "application/json" || !strings.HasPrefix(strings.TrimSpace(body), "{") && !strings.HasPrefix(strings.TrimSpace(body), "[") {
			t.Errorf("GET %s as JSON: %d %s\n%s", p, code, ct, body)
		}
		code, ct, _ = get(t, hs.URL+p, "text/html,application/xhtml+xml,application/json;q=0.9")
		if code != http.StatusOK || !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s from a browser: %d %s", p, code, ct)
		}
	}
}

func TestActionsNeedTheFlagAndTheFormToken(t *testing.T) {
	snap := &Snapshot{At: time.Now()}
	_, ro := newTestServer(t, snap, false)
	resp, err := http.PostForm(ro.URL+"/actions/promote", url.Values{"broker": {"1"}, "member": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /actions/promote on a read-only dashboard: %s", resp.Status)
	}
	s, rw := newTestServer(t, snap, true)
	for _, tok := range []string{"", "not-the-token"} {
		resp, err = http.PostForm(rw.URL+"/actions/promote", url.Values{"csrf": {tok}, "broker": {"1"}, "member": {"1"}, "confirm": {"yes"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST with token %q: %s, want 403", tok, resp.Status)
		}
	}
	// With the token the first POST only asks for confirmation.
	resp, err = http.PostForm(rw.URL+"/actions/promote", url.Values{"csrf": {s.csrf}, "broker": {"1"}, "member": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `id="confirm"`) {
		t.Errorf("POST with the token: %s, want a confirmation page\n%s", resp.Status, b)
	}
}

func TestResetFormIsValidated(t *testing.T) {
	for _, f := range []url.Values{
		{"mode": {"sideways"}},
		{"mode": {"offset"}, "value": {"-1"}},
		{"mode": {"time"}, "value": {"yesterday"}},
		{"mode": {"earliest"}, "partition": {"zero"}},
		{"mode": {"earliest"}, "topic": {"no/slash"}},
	} {
		if _, err := resetSpec(f); err == nil {
			t.Errorf("resetSpec(%v) accepted", f)
		}
	}
	spec, err := resetSpec(url.Values{"mode": {"shift"}, "value": {"-100"}, "topic": {"orders"}, "partition": {"0-1"}})
	if err != nil || spec.Mode != clusterview.ResetShift || spec.ShiftBy != -100 || spec.Topics[0] != "orders" || spec.Partitions[0] != "0-1" {
		t.Errorf("resetSpec: %+v %v", spec, err)
	}
}

func httptestServer(s *Server) *httptest.Server { return httptest.NewServer(s.Handler()) }

// TestMountedUnderAPrefix: the handler can be mounted inside another server
// (e.g. a broker's admin port) under BasePath, and its links keep the prefix.
func TestMountedUnderAPrefix(t *testing.T) {
	s, err := New(Options{ZK: []string{"127.0.0.1:1"}, BasePath: "/dashboard"})
	if err != nil {
		t.Fatal(err)
	}
	s.snap = &Snapshot{At: time.Now(), Topics: []TopicView{{Topic: "orders"}}}
	mux := http.NewServeMux()
	mux.Handle("/dashboard/", s.Handler())
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "metrics") })
	hs := httptest.NewServer(mux)
	defer hs.Close()
	code, _, body := get(t, hs.URL+"/dashboard/topics", "")
	if code != http.StatusOK || !strings.Contains(body, `href="/dashboard/topics/orders"`) || !strings.Contains(body, `href="/dashboard/static/style.css"`) {
		t.Fatalf("GET /dashboard/topics: %d\n%s", code, body)
	}
	if code, _, _ := get(t, hs.URL+"/dashboard/static/app.js", ""); code != http.StatusOK {
		t.Errorf("GET /dashboard/static/app.js: %d", code)
	}
	if _, _, body := get(t, hs.URL+"/metrics", ""); body != "metrics" {
		t.Errorf("the host server's own route: %q", body)
	}
}
