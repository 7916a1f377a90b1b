package compattest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker"
)

// childEnv makes the test binary run a broker described by the JSON
// childSpec in it instead of the tests (see TestMain), so that a test can
// kill it with SIGKILL: no graceful deregistration, its ZooKeeper session
// left to expire on the server.
const childEnv = "METAQ_COMPATTEST_CHILD"

// childSpec describes a child broker.
type childSpec struct {
	ID       int
	Listen   string // 127.0.0.1:<port>
	DataDir  string
	ZK       string
	Root     string
	Topic    string
	Parts    int
	GraceMs  int // zk stale-node grace; 0 = the default
	Sessions int // ZooKeeper session timeout, ms
}

// runChild serves a broker until SIGTERM (graceful, exit 0) or SIGKILL; it
// prints "READY <addr> <session id>" once registered.
func runChild(spec string) int {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, "child broker spec:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	opts := broker.Options{
		BrokerID: s.ID, ListenAddr: s.Listen, HostName: "127.0.0.1", DataDir: s.DataDir,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Topic: func(topic string) (broker.TopicConfig, bool) {
			return broker.TopicConfig{NumPartitions: s.Parts, AcceptPublish: true, AcceptSubscribe: true}, topic == s.Topic
		},
		Topics: []string{s.Topic},
		ZK: broker.ZKOptions{Enable: true, Servers: []string{s.ZK}, Root: s.Root,
			SessionTimeout: time.Duration(s.Sessions) * time.Millisecond, StaleNodeGrace: time.Duration(s.GraceMs) * time.Millisecond},
	}
	b, err := broker.New(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child broker:", err)
		return 2
	}
	if err := b.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child broker:", err)
		return 2
	}
	fmt.Printf("READY %s %d\n", b.Addr(), b.ZKSession().ID())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.Shutdown(sctx); err != nil {
		fmt.Fprintln(os.Stderr, "child broker shutdown:", err)
		return 3
	}
	return 0
}

// child is a running child broker.
type child struct {
	cmd     *exec.Cmd
	addr    string
	session int64
	stderr  *syncBuffer
	exited  chan struct{}
}

// startChild starts a child broker and waits until it is registered.
func startChild(t *testing.T, s childSpec) *child {
	t.Helper()
	spec, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	ch := &child{cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = ch.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		close(ch.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-ch.exited
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "READY ") {
				ready <- sc.Text()
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case line := <-ready:
		if _, err := fmt.Sscanf(line, "READY %s %d", &ch.addr, &ch.session); err != nil {
			t.Fatalf("child broker: %q: %v", line, err)
		}
	case <-ch.exited:
		t.Fatalf("child broker exited before it was ready\n%s", ch.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("child broker not ready within 60s\n%s", ch.stderr.String())
	}
	return ch
}

// kill9 kills the child with SIGKILL and waits for it to exit.
func (ch *child) kill9(t *testing.T) {
	t.Helper()
	if err := ch.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("child broker did not exit after SIGKILL")
	}
}
