package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

func runJSON(t *testing.T, args ...string) result {
	t.Helper()
	var out bytes.Buffer
	if err := run(args, &out); err != nil {
		t.Fatalf("peerbench %v: %v", args, err)
	}
	var r result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("peerbench %v: %v\n%s", args, err, out.String())
	}
	return r
}

// TestFsyncModes: both floor modes append and sync the asked amount and
// report a latency distribution; the temporary file is removed.
func TestFsyncModes(t *testing.T) {
	dir := t.TempDir()
	r := runJSON(t, "fsync", "--dir", dir, "--count", "20", "--json", "--histogram")
	if r.Messages != 20 || r.P50us <= 0 || r.Histogram == nil || r.Histogram.Count != 20 {
		t.Fatalf("fsync rounds: %+v", r)
	}
	r = runJSON(t, "fsync", "--dir", dir, "--rate", "1000", "--duration", "100ms", "--size", "64", "--json")
	if r.Workload != "group-commit" || r.Messages != 100 || r.P50us <= 0 || r.MaxUs < r.P99us {
		t.Fatalf("fsync group commit: %+v", r)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("files left in %s: %v", dir, left)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"fsync"}, {"redis-e2e", "--size", "8"}, {"fsync", "--dir", "x", "extra"}} {
		if err := run(args, &bytes.Buffer{}); !errors.As(err, new(usageError)) {
			t.Errorf("peerbench %v: %v, want a usage error", args, err)
		}
	}
}

// TestRedisE2E runs the Redis Streams bench against a real redis-server
// (skipped where none is installed: it is a benchmark peer, not a
// dependency of metaq's tests).
func TestRedisE2E(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed (apt-get install redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--dir", t.TempDir(),
		"--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := runJSON(t, "redis-e2e", "--addr", addr, "--rate", "500", "--duration", "200ms", "--size", "32", "--json", "--histogram")
	if r.Messages != 100 || r.Failed != 0 || r.P50us <= 0 || r.Histogram == nil || r.Histogram.Count != 100 {
		t.Fatalf("redis-e2e: %+v", r)
	}
}
