package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metaq-go/metaq/internal/clusterview"
)

// csmBuffer is a goroutine-safe output buffer for a command running in the background.
type csmBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *csmBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *csmBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// csmLines decodes one JSON object per line.
func csmLines(t *testing.T, out string) []consumedMessage {
	t.Helper()
	var msgs []consumedMessage
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m consumedMessage
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("consume -o json line %q: %v\n%s", l, err, out)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func csmKey(m consumedMessage) string {
	return m.Partition + "@" + strings.Repeat(" ", 3-len(itoa(m.Offset))) + itoa(m.Offset) + "=" + m.Payload
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }

func TestConsumeMaxPrintsMessagesAndCommits(t *testing.T) {
	f := grpSetup(t)
	opsPut(t, f.brokerAddr, "orders", 0, 3, "m") // offsets 0, 23, 46; end 69
	opsPut(t, f.brokerAddr, "orders", 1, 2, "m") // end 46

	out := mustMetaq(t, f.args("consume", "--group", "c1", "--topic", "orders", "--max", "5", "-o", "json")...)
	msgs := csmLines(t, out)
	var got []string
	for _, m := range msgs {
		got = append(got, csmKey(m))
		if m.Topic != "orders" || m.NextOffset != m.Offset+23 || m.MsgID <= 0 {
			t.Errorf("message %+v", m)
		}
	}
	slices.Sort(got)
	want := []string{"1-0@  0=m-0", "1-0@ 23=m-1", "1-0@ 46=m-2", "1-1@  0=m-0", "1-1@ 23=m-1"}
	if !slices.Equal(got, want) {
		t.Fatalf("consume --max 5:\n got %q\nwant %q", got, want)
	}
	// Close committed what was printed and left the group.
	for p, end := range []int64{69, 46} {
		if o, ok := f.grpOffset(t, "c1", p); !ok || o.Offset != end {
			t.Errorf("partition %d committed %v (found %v), want %d", p, o, ok, end)
		}
	}
	var members []clusterview.GroupMember
	mustMetaqJSON(t, &members, f.args("groups", "describe", "c1", "--members")...)
	if len(members) != 0 {
		t.Fatalf("members after consume ended: %+v", members)
	}

	// A second run of the group resumes after the committed offsets.
	opsPut(t, f.brokerAddr, "orders", 1, 1, "late")
	out = mustMetaq(t, f.args("consume", "--group", "c1", "--topic", "orders", "--max", "1")...)
	if strings.TrimSpace(out) != "orders 1-1 offset 46: late-0" {
		t.Fatalf("second run printed %q", out)
	}

	for _, bad := range [][]string{
		{"consume", "--topic", "orders"},
		{"consume", "--group", "c1"},
		{"consume", "--group", "c1", "--topic", "orders", "--from", "middle"},
	} {
		if r := runMetaq(t, f.args(bad...)...); r.code != exitUsage {
			t.Errorf("%v: exit %d (%v), want %d", bad, r.code, r.err, exitUsage)
		}
	}
}

// An interrupt (the command's context ending, as on SIGINT/SIGTERM) stops
// consume cleanly: exit 0, offsets of printed messages committed, group left.
func TestConsumeInterruptCommitsAndLeaves(t *testing.T) {
	f := grpSetup(t)
	opsPut(t, f.brokerAddr, "orders", 0, 4, "m") // end 92
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out csmBuffer
	cmd := newRootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(f.args("consume", "--group", "c2", "--topic", "orders", "--from", "earliest"))
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	opsEventually(t, "4 messages printed", func() bool { return strings.Count(out.String(), "\n") >= 4 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("consume after interrupt: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("consume did not stop after the interrupt")
	}
	if o, ok := f.grpOffset(t, "c2", 0); !ok || o.Offset != 92 {
		t.Fatalf("committed %v (found %v), want 92", o, ok)
	}
	var st []clusterview.GroupListRow
	mustMetaqJSON(t, &st, f.args("groups", "list")...)
	if len(st) != 1 || st[0].Members != 0 {
		t.Fatalf("groups after interrupt: %+v", st)
	}
}

// csmBenchFields checks the fields every bench workload prints.
func csmBenchFields(t *testing.T, out string) map[string]any {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal([]byte(out), &obj); err != nil {
		t.Fatalf("bench --json is not one JSON object: %v\n%s", err, out)
	}
	for _, k := range []string{"messages", "msgs_per_s", "mb_per_s", "p50_us", "p99_us", "cpu_us_per_msg"} {
		if _, ok := obj[k].(float64); !ok {
			t.Errorf("bench JSON lacks number %q: %v", k, obj)
		}
	}
	return obj
}

func TestBenchConsumeJSON(t *testing.T) {
	f := grpSetup(t)
	opsPut(t, f.brokerAddr, "orders", 0, 30, "bench")
	opsPut(t, f.brokerAddr, "orders", 1, 20, "bench")
	out := mustMetaq(t, f.args("bench", "consume", "--topic", "orders", "--messages", "50", "--json")...)
	obj := csmBenchFields(t, out)
	if obj["messages"] != 50.0 || obj["workload"] != "consume" {
		t.Fatalf("bench consume: %v", obj)
	}
	// The default group is reset to the earliest: a second run reads the same backlog.
	out = mustMetaq(t, f.args("bench", "consume", "--topic", "orders", "--messages", "50")...)
	if !strings.Contains(out, "consume") || !strings.Contains(out, "CPU µs/MSG") {
		t.Fatalf("bench consume table:\n%s", out)
	}
}

func TestBenchE2EJSON(t *testing.T) {
	f := grpSetup(t)
	opsPut(t, f.brokerAddr, "orders", 0, 5, "old") // not this run's: ignored
	out := mustMetaq(t, f.args("bench", "e2e", "--topic", "orders", "--rate", "200", "--duration", "1s", "--size", "32", "--json")...)
	obj := csmBenchFields(t, out)
	if obj["messages"] != 200.0 || obj["failed"] != 0.0 || obj["workload"] != "e2e" || obj["p50_us"].(float64) <= 0 ||
		obj["p99_us"].(float64) < obj["p50_us"].(float64) {
		t.Fatalf("bench e2e: %v", obj)
	}
	// Thread wake-ups and socket syscalls per message: counts that a loaded
	// machine distorts less than CPU time (every message wakes a thread here).
	for _, k := range []string{"ctx_switches_per_msg", "rw_syscalls_per_msg"} {
		if v, ok := obj[k].(float64); !ok || v <= 0 {
			t.Fatalf("bench e2e: %s = %v, want > 0: %v", k, obj[k], obj)
		}
	}
	out = mustMetaq(t, f.args("bench", "e2e", "--topic", "orders", "--rate", "100", "--duration", "500ms", "--size", "16")...)
	if !strings.Contains(out, "End-to-end latency") || !strings.Contains(out, "LATENCY") {
		t.Fatalf("bench e2e table lacks the histogram:\n%s", out)
	}
}

// TestBenchE2EHistogram: --histogram publishes the whole distribution, in
// the table and in the JSON, and its counts add up to the messages.
func TestBenchE2EHistogram(t *testing.T) {
	f := grpSetup(t)
	out := mustMetaq(t, f.args("bench", "e2e", "--topic", "orders", "--rate", "200", "--duration", "500ms", "--histogram", "--json")...)
	var obj struct {
		Messages  int64
		MaxUs     float64 `json:"max_us"`
		Histogram struct {
			Count       int64
			Percentiles []struct {
				Percent float64
				Us      float64
			}
			Buckets []struct {
				LeUs  float64 `json:"le_us"`
				Count int64
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &obj); err != nil {
		t.Fatalf("bench e2e --histogram --json: %v\n%s", err, out)
	}
	h := obj.Histogram
	if obj.Messages != 100 || h.Count != obj.Messages || len(h.Percentiles) != 10 || len(h.Buckets) == 0 {
		t.Fatalf("bench e2e --histogram: %s", out)
	}
	var sum int64
	for _, b := range h.Buckets {
		sum += b.Count
	}
	if sum != h.Count {
		t.Fatalf("bench e2e --histogram: buckets hold %d of %d: %s", sum, h.Count, out)
	}
	if last := h.Percentiles[len(h.Percentiles)-1]; last.Percent != 100 || last.Us != obj.MaxUs {
		t.Fatalf("bench e2e --histogram: last percentile %+v, want the maximum %v", last, obj.MaxUs)
	}
	out = mustMetaq(t, f.args("bench", "e2e", "--topic", "orders", "--rate", "200", "--duration", "500ms", "--histogram")...)
	for _, want := range []string{"PERCENTILE", "99.99%", "max", "CUMULATIVE", "100.000%"} {
		if !strings.Contains(out, want) {
			t.Fatalf("bench e2e --histogram table lacks %q:\n%s", want, out)
		}
	}
}
