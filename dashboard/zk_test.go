package dashboard

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

// TestZooKeeperDownKeepsThePageUsable: the dashboard reads a live cluster;
// when its ZooKeeper dies the pages still answer with the last data, marked
// stale, and say ZooKeeper is unreachable; /health turns 503.
func TestZooKeeperDownKeepsThePageUsable(t *testing.T) {
	zks := zktest.StartServerT(t, zktest.Options{})
	root := "/dash-zk-down"
	brokertest.Start(t, brokertest.Options{BrokerID: 3, ZK: zks.Addr, ZKRoot: root, Partitions: 2,
		Modify: func(o *broker.Options) { o.Topics = []string{"orders"} }})
	s, err := New(Options{ZK: []string{zks.Addr}, ZKRoot: root, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	s.CollectOnce(ctx)
	snap := s.Snapshot()
	if snap.Stale || !snap.ZooKeeper.Connected || len(snap.Brokers) != 1 || snap.Brokers[0].Status != "up" || len(snap.Topics) != 1 {
		t.Fatalf("live snapshot: %+v", snap)
	}
	hs := newHTTP(t, s)
	if code, _, _ := get(t, hs+"/health", "application/json"); code != http.StatusOK {
		t.Fatalf("/health of a healthy cluster: %d", code)
	}

	zks.Stop()
	s.CollectOnce(ctx)
	snap = s.Snapshot()
	if !snap.Stale || snap.ZooKeeper.Connected || len(snap.Brokers) != 1 || len(snap.Problems) == 0 ||
		!strings.Contains(snap.Problems[0], "ZooKeeper is unreachable") {
		t.Fatalf("snapshot with ZooKeeper down: stale %v problems %q brokers %d", snap.Stale, snap.Problems, len(snap.Brokers))
	}
	code, _, body := get(t, hs+"/", "")
	if code != http.StatusOK || !strings.Contains(body, "ZooKeeper is unreachable") || !strings.Contains(body, `id="zk-state">unreachable`) {
		t.Errorf("overview with ZooKeeper down: %d\n%s", code, body)
	}
	if code, _, _ := get(t, hs+"/health", "application/json"); code != http.StatusServiceUnavailable {
		t.Errorf("/health with ZooKeeper down: %d, want 503", code)
	}
}

func newHTTP(t *testing.T, s *Server) string {
	hs := httptestServer(s)
	t.Cleanup(hs.Close)
	return hs.URL
}
