package dashboard

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/metaq-go/metaq/internal/clusterview"
)

// Scale of the measurement in docs/BENCHMARKS.md: 100 topics × 10
// partitions on 2 brokers, 50 groups each consuming 2 topics (20
// partitions), every history ring full.
const (
	perfTopics     = 100
	perfPartitions = 10
	perfGroups     = 50
)

// perfServer builds a dashboard whose snapshots describe that cluster and
// runs History collection cycles through derive, so every ring is full.
func perfServer(tb testing.TB) *Server {
	s, err := New(Options{ZK: []string{"127.0.0.1:1"}})
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	for cycle := range s.opts.History {
		snap := perfSnapshot(int64(cycle))
		s.derive(snap, start.Add(time.Duration(cycle)*s.opts.Interval))
		s.snap = snap
	}
	return s
}

func perfSnapshot(cycle int64) *Snapshot {
	snap := &Snapshot{At: time.Now(), Interval: 5 * time.Second, Problems: []string{}}
	for b := range 2 {
		snap.Brokers = append(snap.Brokers, BrokerView{BrokerRow: clusterview.BrokerRow{
			Broker: clusterview.Broker{ID: b, URI: fmt.Sprintf("meta://10.0.0.%d:8123", b+1), Registered: true},
			Status: "up", Puts: cycle * 1000}, Role: "master"})
	}
	for i := range perfTopics {
		t := TopicView{Topic: "topic-" + strconv.Itoa(i), Brokers: []int{0, 1}, PubPartitions: perfPartitions,
			SubPartitions: perfPartitions, PerBroker: map[int]int{0: perfPartitions / 2, 1: perfPartitions / 2},
			Messages: cycle * 100, Bytes: cycle * 10000}
		snap.Topics = append(snap.Topics, t)
	}
	for g := range perfGroups {
		gv := GroupView{GroupState: clusterview.GroupState{Group: "group-" + strconv.Itoa(g), Style: clusterview.StyleOurs,
			Generation: 7, Leader: "member-0"}, LagKnown: true}
		for m := range 3 {
			gv.Members = append(gv.Members, clusterview.GroupMember{ID: fmt.Sprintf("member-%d", m), Style: clusterview.StyleOurs,
				Host: "consumer-host", Topics: []string{"topic-" + strconv.Itoa(g), "topic-" + strconv.Itoa(g+50)}, Partitions: 7})
		}
		gv.Topics = gv.Members[0].Topics
		for _, topic := range gv.Topics {
			for p := range perfPartitions {
				end := cycle*10000 + int64(p)
				committed := end - int64(g*p)
				gv.Partitions = append(gv.Partitions, PartitionLagView{GroupPartition: clusterview.GroupPartition{Topic: topic,
					Partition: fmt.Sprintf("%d-%d", p%2, p/2), Committed: committed, LogEnd: end, Lag: end - committed,
					Owner: "member-1"}})
				gv.TotalLag += end - committed
			}
		}
		snap.Groups = append(snap.Groups, gv)
	}
	return snap
}

// rssMiB is the resident set size of this process, from /proc (Linux).
func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}

// TestGroupsPageAtScale measures (and logs; it asserts only correctness)
// the groups page of a dashboard holding 100 topics × 10 partitions and 50
// groups with full history. The numbers go to docs/BENCHMARKS.md:
//
//	go test -run TestGroupsPageAtScale -v ./dashboard/
func TestGroupsPageAtScale(t *testing.T) {
	s := perfServer(t)
	h := s.Handler()
	var took []time.Duration
	var size int
	for range 7 {
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/groups", nil))
		took = append(took, time.Since(start))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "group-49") {
			t.Fatalf("GET /groups: %d", rec.Code)
		}
		size = rec.Body.Len()
	}
	slices.Sort(took)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("groups page: %d topics × %d partitions, %d groups (%d partition rows), %d samples per series, %d series",
		perfTopics, perfPartitions, perfGroups, perfGroups*2*perfPartitions, s.opts.History, len(s.st.hist.series))
	t.Logf("render: median %v, max %v over %d renders; page %d KiB", took[len(took)/2], took[len(took)-1], len(took), size/1024)
	t.Logf("memory: heap in use %.1f MiB after GC, process RSS %.1f MiB (test binary included)",
		float64(ms.HeapInuse)/(1<<20), rssMiB())
}

// BenchmarkGroupsPage renders the groups page at the scale above.
func BenchmarkGroupsPage(b *testing.B) {
	s := perfServer(b)
	h := s.Handler()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/groups", nil))
	}
}
