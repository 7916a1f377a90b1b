package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/broker/store"
)

var opsUpdateGolden = flag.Bool("ops.update", false, "rewrite testdata/*.golden")

// metaqResult is what one CLI invocation produced.
type metaqResult struct {
	out  string
	err  error
	code int
}

// runMetaq runs the metaq command line in-process.
func runMetaq(t *testing.T, args ...string) metaqResult {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return metaqResult{out: out.String(), err: err, code: exitCode(err)}
}

// mustMetaq runs the CLI and fails the test unless it exits 0.
func mustMetaq(t *testing.T, args ...string) string {
	t.Helper()
	r := runMetaq(t, args...)
	if r.code != exitOK {
		t.Fatalf("metaq %s: exit %d: %v\n%s", strings.Join(args, " "), r.code, r.err, r.out)
	}
	return r.out
}

// mustMetaqJSON runs the CLI with -o json and decodes its output into v.
func mustMetaqJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := mustMetaq(t, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("metaq %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// opsZKRoot returns a ZooKeeper root private to the test.
func opsZKRoot(t *testing.T) string {
	return "/metaq-cli-" + regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")
}

// opsPut puts n messages "<prefix>-<i>" to topic/partition over the raw protocol.
func opsPut(t *testing.T, addr, topic string, part, n int, prefix string) {
	t.Helper()
	c := brokertest.Dial(t, addr)
	for i := range n {
		data := fmt.Sprintf("%s-%d", prefix, i)
		c.Send(t, fmt.Sprintf("put %s %d %d 0 %d %d\r\n%s", topic, part, len(data), store.Checksum([]byte(data)), i+1, data))
		if line, body := c.ReadReply(t); !strings.HasPrefix(line, "result 200 ") {
			t.Fatalf("put %d: %s %s", i, line, body)
		}
	}
}

// opsStartBroker starts a broker serving topics with parts partitions each.
func opsStartBroker(t *testing.T, id int, zkAddr, zkRoot string, parts int, topics ...string) *broker.Broker {
	t.Helper()
	return brokertest.Start(t, brokertest.Options{BrokerID: id, ZK: zkAddr, ZKRoot: zkRoot, Partitions: parts,
		Modify: func(o *broker.Options) { o.Topics = topics }})
}

// opsEventually polls cond until it holds or the deadline passes.
func opsEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for wait := time.Millisecond; !cond(); wait = min(wait*2, 100*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(wait)
	}
}

// golden compares got with testdata/<name>.golden (rewritten with -ops.update).
func opsGolden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name+".golden")
	if *opsUpdateGolden {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -ops.update to create it)", err, t.Name())
	}
	if string(want) != got {
		t.Errorf("%s differs from %s (run with -ops.update if the change is intended)\n--- got\n%s--- want\n%s", name, p, got, want)
	}
}
