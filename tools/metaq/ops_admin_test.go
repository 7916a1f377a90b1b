package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// scrape fetches /metrics and parses the text exposition format.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	var p expfmt.TextParser
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// metricValue returns the value of the sample of family name whose labels
// include want (label=value pairs), or fails.
func metricValue(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("no sample %s%v", name, want)
	return 0
}

func healthz(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestAdminMetricsFromBrokerSnapshot(t *testing.T) {
	b := opsStartBroker(t, 7, zktest.Shared(t).Addr, opsZKRoot(t), 2, "clicks")
	a, err := startAdmin("127.0.0.1:0", b, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })

	opsPut(t, b.Addr(), "clicks", 1, 5, "click") // 5 × 27 bytes
	c := brokertest.Dial(t, b.Addr())
	c.Send(t, "get clicks g 0 0 1024 9\r\n") // partition 0 is empty: a miss
	if line, _ := c.ReadReply(t); !strings.HasPrefix(line, "result 404") {
		t.Fatalf("get of an empty partition: %s", line)
	}
	c.Send(t, "put clicks 0 1 0 12345 10\r\nx") // bad checksum: a put failure
	if line, _ := c.ReadReply(t); !strings.HasPrefix(line, "result 500") {
		t.Fatalf("put with a bad checksum: %s", line)
	}

	mfs := scrape(t, a.Addr())
	logs := b.Snapshot().CommitLogs
	if len(logs) != 1 {
		t.Fatalf("commit logs in the snapshot: %+v, want the data directory's", logs)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"metaq_puts_total", nil, 6},
		{"metaq_put_failures_total", nil, 1},
		{"metaq_put_bytes_total", nil, 5 * 7},
		{"metaq_gets_total", nil, 1},
		{"metaq_get_misses_total", nil, 1},
		{"metaq_partitions", nil, 2},
		{"metaq_connections", nil, 2}, // opsPut's and c
		{"metaq_topic_messages", []string{"topic", "clicks"}, 5},
		{"metaq_topic_bytes", []string{"topic", "clicks"}, 5 * 27},
		{"metaq_partition_max_offset", []string{"topic", "clicks", "partition", "1"}, 5 * 27},
		{"metaq_partition_max_offset", []string{"topic", "clicks", "partition", "0"}, 0},
		{"metaq_zookeeper_connected", nil, 1},
		{"metaq_zookeeper_state", []string{"state", "connected"}, 1},
		{"metaq_zookeeper_state", []string{"state", "disabled"}, 0},
		{"metaq_broker_info", []string{"broker_id", "7", "uri", b.URI()}, 1},
		{"metaq_serving", nil, 1},
		{"metaq_handler_panics_total", nil, 0},
		{"metaq_paused_connections", nil, 0},
		// Puts to one partition are fdatasynced without the commit log.
		{"metaq_commit_log_up", []string{"dir", logs[0].Dir}, 1},
		{"metaq_commit_log_commits_total", []string{"dir", logs[0].Dir}, 0},
		{"metaq_commit_log_bytes_total", []string{"dir", logs[0].Dir}, 0},
	} {
		if got := metricValue(t, mfs, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if mfs["go_goroutines"] == nil || mfs["metaq_puts_total"].GetType() != dto.MetricType_COUNTER {
		t.Errorf("want Go runtime metrics and typed counters")
	}
	if code, body := healthz(t, a.Addr()); code != http.StatusOK || body != "ok" {
		t.Errorf("/healthz = %d %q", code, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := healthz(t, a.Addr()); code != http.StatusServiceUnavailable || !strings.Contains(body, "not serving") {
		t.Errorf("/healthz after shutdown = %d %q", code, body)
	}
}

// TestBrokerCommandServesAdminPort runs `metaq broker` with adminPort in the
// config and scrapes it: the wiring of --admin / adminPort.
func TestBrokerCommandServesAdminPort(t *testing.T) {
	adminPort, err := zktest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "server.ini")
	ini := fmt.Sprintf("[system]\nbrokerId=3\nhostName=127.0.0.1\nserverPort=0\ndataPath=%s\nadminPort=%d\n"+
		"[zookeeper]\nzk.zkEnable=false\n[topic=web]\nnumPartitions=2\n", filepath.Join(dir, "data"), adminPort)
	if err := os.WriteFile(cfg, []byte(ini), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan metaqResult, 1)
	go func() {
		cmd := newRootCmd()
		cmd.SetArgs([]string{"broker", "-c", cfg, "--listen", "127.0.0.1:0"})
		cmd.SetOut(io.Discard)
		err := cmd.ExecuteContext(ctx)
		done <- metaqResult{err: err}
	}()
	addr := fmt.Sprintf("127.0.0.1:%d", adminPort)
	opsEventually(t, "the admin endpoint", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	mfs := scrape(t, addr)
	if got := metricValue(t, mfs, "metaq_partitions"); got != 2 {
		t.Errorf("metaq_partitions = %v, want 2", got)
	}
	if got := metricValue(t, mfs, "metaq_zookeeper_state", "state", "disabled"); got != 1 {
		t.Errorf("zookeeper_state{disabled} = %v", got)
	}
	cancel()
	select {
	case r := <-done:
		if r.err != nil {
			t.Errorf("metaq broker: %v", r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("metaq broker did not stop after its context ended")
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("admin endpoint still up after the broker stopped")
	}
}

// TestBrokerCommandServesDashboard: `metaq broker --dashboard` serves the
// read-only dashboard on its admin port, reading the cluster from ZooKeeper:
// its overview twin lists the broker itself as up, and the page is HTML.
func TestBrokerCommandServesDashboard(t *testing.T) {
	adminPort, err := zktest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	zkAddr, root := zktest.Shared(t).Addr, opsZKRoot(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "server.ini")
	ini := fmt.Sprintf("[system]\nbrokerId=7\nhostName=127.0.0.1\nserverPort=0\ndataPath=%s\nadminPort=%d\n"+
		"[zookeeper]\nzk.zkEnable=true\nzk.zkConnect=%s\nzk.zkRoot=%s\n[topic=web]\n", filepath.Join(dir, "data"), adminPort, zkAddr, root)
	if err := os.WriteFile(cfg, []byte(ini), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		cmd := newRootCmd()
		cmd.SetArgs([]string{"broker", "-c", cfg, "--listen", "127.0.0.1:0", "--dashboard"})
		cmd.SetOut(io.Discard)
		done <- cmd.ExecuteContext(ctx)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("metaq broker: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("metaq broker did not stop after its context ended")
		}
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d/dashboard/", adminPort)
	opsEventually(t, "the dashboard on the admin port lists broker 7 as up", func() bool {
		req, _ := http.NewRequest(http.MethodGet, base, nil)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var v struct {
			Brokers []struct {
				ID     int    `json:"id"`
				Status string `json:"status"`
			} `json:"brokers"`
		}
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&v) != nil {
			return false
		}
		return len(v.Brokers) == 1 && v.Brokers[0].ID == 7 && v.Brokers[0].Status == "up"
	})
	resp, err := http.Get(base + "topics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `href="/dashboard/topics/web"`) {
		t.Fatalf("GET %stopics: %s\n%s", base, resp.Status, body)
	}
}

// TestBrokerCommandDashboardNeedsAdminPortAndZooKeeper: a clear usage error.
func TestBrokerCommandDashboardNeedsAdminPortAndZooKeeper(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "server.ini")
	ini := fmt.Sprintf("[system]\nbrokerId=7\nserverPort=0\ndataPath=%s\n[zookeeper]\nzk.zkEnable=false\n", filepath.Join(dir, "data"))
	if err := os.WriteFile(cfg, []byte(ini), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := newRootCmd()
	cmd.SetArgs([]string{"broker", "-c", cfg, "--dashboard"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.ExecuteContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "set adminPort (or --admin) and zk.zkEnable=true") {
		t.Fatalf("want the usage error, got %v", err)
	}
}
