package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/brokertest"
)

func TestParseServerMetrics(t *testing.T) {
	text := "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n" +
		"# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total_x 9\nprocess_cpu_seconds_total 12.5\n" +
		"metaq_puts_total 400\nmetaq_put_batches_total 100\nmetaq_topic_puts_total{topic=\"t\"} 7\n"
	v, err := parseServerMetrics(bufio.NewScanner(strings.NewReader(text)), "u")
	require.NoError(t, err)
	require.InDelta(t, 12.5, v.cpu, 1e-9)
	require.InDelta(t, 400, v.puts, 1e-9)
	require.InDelta(t, 100, v.batches, 1e-9)
	_, err = parseServerMetrics(bufio.NewScanner(strings.NewReader("go_goroutines 3\n")), "http://x/metrics")
	require.ErrorContains(t, err, "has no process_cpu_seconds_total")
	_, err = parseServerMetrics(bufio.NewScanner(strings.NewReader("process_cpu_seconds_total x\n")), "u")
	require.ErrorContains(t, err, "bad process_cpu_seconds_total value")
}

// TestBenchProduceSpreadsAndReportsServerCPU: --partitions-spread puts
// messages on that many partitions, and --admin reports the broker's CPU
// per message from its metrics (here a stand-in whose counter rises by one
// second per scrape).
func TestBenchProduceSpreadsAndReportsServerCPU(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 8})
	var scrapes atomic.Int64
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "process_cpu_seconds_total %d\n", scrapes.Add(1))
	}))
	defer admin.Close()
	out, err := produceCLI(t, "", "bench", "produce", "--broker", b.Addr(), "--partitions-spread", "8",
		"--topic", "spread", "--messages", "800", "--size", "16", "--connections", "2",
		"--admin", strings.TrimPrefix(admin.URL, "http://"), "--json")
	require.NoError(t, err)
	var r map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	require.EqualValues(t, 800, r["messages"])
	require.InDelta(t, 1.0, r["server_cpu_s"], 1e-9)
	require.InDelta(t, 1e6/800, r["server_cpu_us_per_msg"], 1e-6)
	for part := 0; part < 8; part++ {
		p, err := b.Store().Partition("spread", part, false)
		require.NoError(t, err, "partition %d got no message", part)
		require.Positive(t, p.Stats().Messages, "partition %d", part)
	}

	_, err = produceCLI(t, "", "bench", "produce", "--broker", b.Addr(), "--topic", "spread", "--messages", "10",
		"--admin", "127.0.0.1:1")
	require.ErrorContains(t, err, "--admin: read the broker's metrics")
}
