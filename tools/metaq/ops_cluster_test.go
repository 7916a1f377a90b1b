package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/internal/clusterview"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// normalizeURIs replaces each broker's host:port by a same-width placeholder
// so that aligned tables stay comparable (ephemeral ports have 5 digits).
func normalizeURIs(s string, brokers ...*broker.Broker) string {
	for i, b := range brokers {
		s = strings.ReplaceAll(s, strings.TrimPrefix(b.URI(), "meta://"), fmt.Sprintf("127.0.0.1:PORT%d", i+1))
	}
	return s
}

func TestClusterCommandsAgainstRealBrokers(t *testing.T) {
	zkAddr := zktest.Shared(t).Addr
	root := opsZKRoot(t)
	b1 := opsStartBroker(t, 1, zkAddr, root, 2, "orders", "audit")
	b2 := opsStartBroker(t, 2, zkAddr, root, 3, "orders")
	opsPut(t, b1.Addr(), "orders", 0, 3, "hello")   // 3 × (20 + 7) = 81 bytes
	opsPut(t, b2.Addr(), "orders", 2, 2, "goodbye") // 2 × (20 + 9) = 58 bytes
	zk := []string{"--zk", zkAddr, "--zk-root", root}

	t.Run("cluster", func(t *testing.T) {
		var rep clusterview.ClusterReport
		mustMetaqJSON(t, &rep, append([]string{"cluster"}, zk...)...)
		if rep.ZooKeeper.State != "connected" || rep.ZooKeeper.Root != root || rep.Topics != 2 || len(rep.Brokers) != 2 {
			t.Fatalf("cluster report: %+v", rep)
		}
		for i, b := range []*broker.Broker{b1, b2} {
			got := rep.Brokers[i]
			if got.ID != i+1 || got.URI != b.URI() || got.Status != "up" || !got.Registered {
				t.Errorf("broker %d: %+v, want uri %s up", i+1, got, b.URI())
			}
		}
		if rep.Brokers[0].Topics != 2 || rep.Brokers[1].Topics != 1 {
			t.Errorf("topics per broker: %d, %d; want 2, 1", rep.Brokers[0].Topics, rep.Brokers[1].Topics)
		}
		out := mustMetaq(t, append([]string{"cluster"}, zk...)...)
		for _, want := range []string{"Brokers:   2", "Topics:    2", b1.URI(), b2.URI(), "connected"} {
			if !strings.Contains(out, want) {
				t.Errorf("cluster table lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("brokers", func(t *testing.T) {
		var rows []clusterview.BrokerRow
		mustMetaqJSON(t, &rows, append([]string{"brokers"}, zk...)...)
		if len(rows) != 2 || rows[0].Messages != 3 || rows[1].Messages != 2 || rows[0].Puts != 3 {
			t.Fatalf("brokers: %+v", rows)
		}
		for _, r := range rows {
			if r.Status != "up" || !strings.HasPrefix(r.Version, "metaq-go") || r.Connections < 1 {
				t.Errorf("broker row %+v", r)
			}
		}
	})

	t.Run("topics list golden", func(t *testing.T) {
		opsGolden(t, "topics_list", mustMetaq(t, append([]string{"topics", "list"}, zk...)...))
		var rows []topicListRow
		mustMetaqJSON(t, &rows, append([]string{"topics", "list"}, zk...)...)
		if len(rows) != 2 || rows[1].Topic != "orders" || rows[1].PubPartitions != 5 || fmt.Sprint(rows[1].Brokers) != "[1 2]" {
			t.Errorf("topics list: %+v", rows)
		}
	})

	t.Run("topics describe golden", func(t *testing.T) {
		out := mustMetaq(t, append([]string{"topics", "describe", "orders"}, zk...)...)
		opsGolden(t, "topics_describe_orders", normalizeURIs(out, b1, b2))
		var d clusterview.TopicDescription
		mustMetaqJSON(t, &d, append([]string{"topics", "describe", "orders"}, zk...)...)
		if len(d.Partitions) != 5 {
			t.Fatalf("partitions: %+v", d.Partitions)
		}
		p := d.Partitions[4] // 2-2
		if p.Partition != "2-2" || p.MaxOffset == nil || *p.MaxOffset != 58 || *p.MinOffset != 0 || !p.Pub || !p.Sub {
			t.Errorf("2-2: %+v", p)
		}
	})

	t.Run("topics describe unknown topic", func(t *testing.T) {
		r := runMetaq(t, append([]string{"topics", "describe", "nosuch"}, zk...)...)
		if r.code != exitFailure || !strings.Contains(r.err.Error(), "metaq topics list") {
			t.Errorf("exit %d, err %v; want 1 and a hint", r.code, r.err)
		}
	})

	t.Run("stats", func(t *testing.T) {
		var m map[string]any
		mustMetaqJSON(t, &m, "stats", b1.Addr())
		if m["total_messages"] != float64(3) || m["broker_id"] != float64(1) || m["slave"] != false {
			t.Errorf("stats: %v", m)
		}
		var offs map[string][]map[string]int64
		mustMetaqJSON(t, &offs, "stats", b1.Addr(), "offsets")
		if len(offs["orders"]) != 2 || offs["orders"][0]["max_offset"] != 81 {
			t.Errorf("stats offsets: %v", offs)
		}
		out := mustMetaq(t, "stats", "meta://"+b2.Addr(), "orders")
		if !strings.Contains(out, "message_count") || !strings.HasPrefix(out, "KEY") {
			t.Errorf("stats orders:\n%s", out)
		}
		if out := mustMetaq(t, "stats", b1.Addr(), "config"); !strings.Contains(out, "brokerId=1") {
			t.Errorf("stats config: %q", out)
		}
	})

	t.Run("zk tree", func(t *testing.T) {
		out := mustMetaq(t, append([]string{"zk", "tree"}, zk...)...)
		for _, want := range []string{root + "\n", "master = \"" + b1.URI() + "\" [ephemeral]", "1-m = \"{", "└── "} {
			if !strings.Contains(out, want) {
				t.Errorf("zk tree lacks %q:\n%s", want, out)
			}
		}
		var n zkNode
		mustMetaqJSON(t, &n, append([]string{"zk", "tree", root + "/brokers/ids/2"}, zk...)...)
		if n.Data != b2.URI() || len(n.Children) != 2 || n.Children[0].Path != root+"/brokers/ids/2/master" || !n.Children[0].Ephemeral {
			t.Errorf("zk tree ids/2: %+v", n)
		}
		r := runMetaq(t, append([]string{"zk", "tree", "/nope/nothing"}, zk...)...)
		if r.code != exitFailure || !strings.Contains(r.err.Error(), "--zk-root") {
			t.Errorf("missing node: exit %d, %v", r.code, r.err)
		}
	})

	t.Run("healthcheck", func(t *testing.T) {
		var rep clusterview.HealthReport
		mustMetaqJSON(t, &rep, append([]string{"healthcheck", "--expect", "2"}, zk...)...)
		if !rep.Healthy || len(rep.Brokers) != 2 {
			t.Errorf("healthcheck: %+v", rep)
		}
		mustMetaq(t, "healthcheck", "--broker", b1.Addr()+","+b2.Addr())
		r := runMetaq(t, append([]string{"healthcheck", "--expect", "3"}, zk...)...)
		if r.code != exitCheck || !strings.Contains(r.err.Error(), "expected at least 3") {
			t.Errorf("--expect 3: exit %d, %v", r.code, r.err)
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{{"cluster"}, {"stats"}, {"healthcheck"}, {"cluster", "--zk", zkAddr, "-o", "yaml"}, {"topics"}} {
			if r := runMetaq(t, args...); r.code != exitUsage {
				t.Errorf("metaq %v: exit %d (%v), want %d", args, r.code, r.err, exitUsage)
			}
		}
	})

	// Last: stop broker 2 and look again.
	t.Run("broker down", func(t *testing.T) {
		addr2 := b2.Addr()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b2.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		var rep clusterview.ClusterReport
		mustMetaqJSON(t, &rep, append([]string{"cluster"}, zk...)...)
		// A clean shutdown removes ids/2 as well (MetaQ's unregisterBrokerInZk):
		// the stopped broker is not listed at all ("not registered" is for
		// an id node left without a master, e.g. after a crash).
		if len(rep.Brokers) != 1 || rep.Brokers[0].Status != "up" || rep.Topics != 2 {
			t.Errorf("after shutdown of broker 2: %+v", rep)
		}
		r := runMetaq(t, append([]string{"healthcheck", "--expect", "2"}, zk...)...)
		if r.code != exitCheck {
			t.Errorf("healthcheck --expect 2 with one broker: exit %d, want 3", r.code)
		}
		r = runMetaq(t, "healthcheck", "--broker", addr2, "--timeout", "2s")
		if r.code != exitCheck || !strings.Contains(r.out, "FAIL") {
			t.Errorf("healthcheck of a stopped broker: exit %d\n%s", r.code, r.out)
		}
		r = runMetaq(t, "stats", addr2)
		if r.code != exitFailure || !strings.Contains(r.err.Error(), "is the broker running?") {
			t.Errorf("stats of a stopped broker: exit %d, %v", r.code, r.err)
		}
	})
}

// notABroker listens on loopback; each connection reads one request line,
// then closes (closeAfterRequest) or stays silent until the test ends.
func notABroker(t *testing.T, closeAfterRequest bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(done); ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer nc.Close()
				_, _ = bufio.NewReader(nc).ReadString('\n')
				if !closeAfterRequest {
					<-done
				}
			})
		}
	})
	return ln.Addr().String()
}

// The broker requests of the CLI go through internal/conn; its errors still
// say which broker failed and what to check.
func TestBrokerRequestErrorsNameTheBrokerAndTheCause(t *testing.T) {
	silent := notABroker(t, false)
	r := runMetaq(t, "stats", silent, "--timeout", "300ms")
	if r.code != exitFailure || !strings.Contains(r.err.Error(), "broker "+silent+": stats \"\": no reply within --timeout") {
		t.Errorf("stats of a silent server: exit %d, %v", r.code, r.err)
	}
	r = runMetaq(t, "healthcheck", "--broker", silent, "--timeout", "300ms", "-o", "json")
	if r.code != exitCheck || !strings.Contains(r.out, "version: no reply within --timeout") {
		t.Errorf("healthcheck of a silent server: exit %d\n%s", r.code, r.out)
	}
	closing := notABroker(t, true)
	r = runMetaq(t, "stats", closing, "topics")
	if r.code != exitFailure || !strings.Contains(r.err.Error(), "is it a metaq/MetaQ broker?") {
		t.Errorf("stats of a server that hangs up: exit %d, %v", r.code, r.err)
	}
	r = runMetaq(t, "tx", "list", "--broker", closing)
	if r.code != exitFailure || !strings.Contains(r.err.Error(), "broker "+closing+": RECOVER") {
		t.Errorf("tx list of a server that hangs up: exit %d, %v", r.code, r.err)
	}
}
