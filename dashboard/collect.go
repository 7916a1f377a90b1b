package dashboard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/metaq-go/metaq/broker/config"
	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/clusterview"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/zkrecipes"
)

// collectState is what one collection carries over to the next: counters
// for rates, when each committed offset last moved, when each transaction
// was first seen, and the history rings. Only CollectOnce uses it.
type collectState struct {
	mu        sync.Mutex // held for a whole CollectOnce
	hist      *history
	prevAt    time.Time
	prevMsgs  map[string]int64 // "<broker>/<topic>" → messages (stats topics)
	prevBytes map[string]int64
	committed map[string]int64     // "<group>\x00<topic>\x00<partition>" → committed offset
	moved     map[string]time.Time // same key → when the committed offset last changed
	txSeen    map[string]time.Time // "<broker>/<key>" → first seen
	configs   map[int]brokerConfig // by broker id: re-read when config_checksum changes
}

// brokerConfig is a broker's parsed configuration file.
type brokerConfig struct {
	checksum string
	cfg      *config.Config
}

func newCollectState(size int) *collectState {
	return &collectState{hist: newHistory(size), prevMsgs: map[string]int64{}, prevBytes: map[string]int64{},
		committed: map[string]int64{}, moved: map[string]time.Time{}, txSeen: map[string]time.Time{},
		configs: map[int]brokerConfig{}}
}

// CollectOnce reads the cluster and replaces the snapshot. When ZooKeeper
// cannot be read the previous snapshot is kept, marked stale, with the
// reason in its banner.
func (s *Server) CollectOnce(ctx context.Context) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	now := time.Now()
	snap, err := s.read(ctx, now)
	if err != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		stale := *s.snap
		if !stale.Stale {
			stale.StaleSince = stale.At
		}
		stale.At, stale.Stale = now, true
		stale.ZooKeeper.Connected, stale.ZooKeeper.Error = false, err.Error()
		stale.ZooKeeper.Servers = s.opts.ZK
		msg := "ZooKeeper is unreachable: " + err.Error()
		if !stale.StaleSince.IsZero() {
			msg += "; the data below is from " + stale.StaleSince.UTC().Format(time.RFC3339)
		}
		stale.Problems = []string{msg}
		s.snap = &stale
		return
	}
	s.derive(snap, now)
	s.mu.Lock()
	s.snap = snap
	s.mu.Unlock()
}

// brokerData is what every broker answered in one cycle.
type brokerData struct {
	stats   map[int]clusterview.BrokerStats
	topics  map[int]clusterview.Lines
	offsets map[int]clusterview.Lines
	tx      []clusterview.TxRow
	txRes   map[int]clusterview.Result[string]
	health  clusterview.HealthReport
}

// askBrokers sends the cycle's requests to every registered broker, all at once.
func (s *Server) askBrokers(ctx context.Context, brokers []clusterview.Broker) brokerData {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	var d brokerData
	var wg sync.WaitGroup
	wg.Go(func() { d.stats = clusterview.CollectStats(ctx, brokers, "") })
	wg.Go(func() { d.topics = clusterview.CollectLines(ctx, brokers, "topics") })
	wg.Go(func() { d.offsets = clusterview.CollectLines(ctx, brokers, "offsets") })
	wg.Go(func() { d.tx, d.txRes = clusterview.RecoverAll(ctx, brokers) })
	wg.Go(func() { d.health = clusterview.CheckRegistered(ctx, brokers, 1, s.paths, s.opts.Timeout) })
	wg.Wait()
	return d
}

// read builds a snapshot of the cluster (without rates and history).
func (s *Server) read(ctx context.Context, now time.Time) (*Snapshot, error) {
	sess, err := s.session(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", strings.Join(s.opts.ZK, ","), err)
	}
	ctx, cancel := context.WithTimeout(ctx, 6*s.opts.Timeout)
	defer cancel()
	zctx, zcancel := context.WithTimeout(ctx, s.opts.Timeout)
	brokers, err := clusterview.ListBrokers(zctx, sess, s.paths)
	zcancel()
	if err != nil {
		return nil, fmt.Errorf("read brokers: %w", err)
	}
	topics, err := clusterview.ListTopics(ctx, sess, s.paths)
	if err != nil {
		return nil, fmt.Errorf("read topics: %w", err)
	}
	d := s.askBrokers(ctx, brokers)
	snap := &Snapshot{At: now, Interval: s.opts.Interval, Problems: []string{}, Health: d.health,
		ZooKeeper: ZooKeeperView{ZKStatus: clusterview.ZKStatusOf(sess, s.opts.ZK, s.paths), Connected: true},
		offsets:   map[int]map[string]map[int][2]int64{}}
	for id, l := range d.offsets {
		if l.Err == nil {
			snap.offsets[id] = clusterview.ParseOffsets(l.Lines)
		}
	}
	if snap.Replication, err = clusterview.ReadReplication(ctx, sess, s.paths, brokers); err != nil {
		return nil, fmt.Errorf("read replication: %w", err)
	}
	rep := clusterview.BuildCluster(snap.ZooKeeper.ZKStatus, brokers, len(topics), d.stats)
	snap.Brokers = s.brokerViews(rep, brokers, d)
	snap.Topics = topicViews(topics, d.topics)
	s.addRetention(ctx, snap.Topics, brokers, d.stats)
	if snap.Groups, err = s.readGroups(ctx, sess, snap); err != nil {
		return nil, fmt.Errorf("read consumer groups: %w", err)
	}
	snap.Tx = make([]TxView, 0, len(d.tx))
	for _, t := range d.tx {
		snap.Tx = append(snap.Tx, TxView{TxRow: t})
	}
	for _, id := range slices.Sorted(maps.Keys(d.txRes)) {
		if e := d.txRes[id].Err; e != nil {
			snap.TxErrors = append(snap.TxErrors, e.Error())
		}
	}
	for _, b := range snap.Brokers {
		if b.Status != "up" {
			snap.Problems = append(snap.Problems, fmt.Sprintf("broker %d is %s%s", b.ID, b.Status, orEmpty(": ", b.Error)))
		}
	}
	return snap, nil
}

func orEmpty(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}

// brokerViews joins the cluster report with each broker's stats.
func (s *Server) brokerViews(rep clusterview.ClusterReport, brokers []clusterview.Broker, d brokerData) []BrokerView {
	out := make([]BrokerView, 0, len(brokers))
	for i, br := range brokers {
		st := d.stats[br.ID]
		v := BrokerView{BrokerRow: clusterview.BrokerRowOf(br, st), Role: "master", Admin: s.opts.AdminAddrs[br.ID]}
		if rep.Brokers[i].Status == "unreachable" {
			v.Status, v.Error = "unreachable", rep.Brokers[i].Error
		}
		if st.Stats["slave"] == "true" {
			v.Role = "slave"
		}
		if l, ok := d.topics[br.ID]; ok && l.Err == nil {
			for _, line := range l.Lines {
				obj, _ := clusterview.StatsValue(line.Value).(map[string]any)
				n, _ := obj["message_bytes"].(int64)
				parts, _ := obj["partitions"].(int64)
				v.DiskBytes += n
				v.Partitions += int(parts)
			}
		}
		out = append(out, v)
	}
	return out
}

// topicViews sums each topic's registrations and stats over the brokers.
func topicViews(topics []clusterview.TopicReg, lines map[int]clusterview.Lines) []TopicView {
	type counts struct{ msgs, bytes int64 }
	per := map[string]map[int]counts{}
	for id, l := range lines {
		if l.Err != nil {
			continue
		}
		for _, line := range l.Lines {
			obj, ok := clusterview.StatsValue(line.Value).(map[string]any)
			if !ok {
				continue
			}
			m, _ := obj["message_count"].(int64)
			b, _ := obj["message_bytes"].(int64)
			if per[line.Key] == nil {
				per[line.Key] = map[int]counts{}
			}
			per[line.Key][id] = counts{m, b}
		}
	}
	out := make([]TopicView, 0, len(topics))
	for _, t := range topics {
		v := TopicView{Topic: t.Topic, Brokers: t.BrokerIDs(), PerBroker: map[int]int{}}
		for _, id := range v.Brokers {
			v.PubPartitions += t.Pub[id]
			v.SubPartitions += t.Sub[id]
			v.PerBroker[id] = max(t.Pub[id], t.Sub[id])
			if l, ok := lines[id]; ok && l.Err != nil {
				v.Error = fmt.Sprintf("broker %d did not answer: message counts are partial", id)
			}
			c := per[t.Topic][id]
			v.Messages += c.msgs
			v.Bytes += c.bytes
		}
		out = append(out, v)
	}
	return out
}

// readGroups reads every group's state and lag; log ends come from the
// brokers' `stats offsets` of this cycle.
func (s *Server) readGroups(ctx context.Context, sess *zkrecipes.Session, snap *Snapshot) ([]GroupView, error) {
	names, _, err := sess.Children(ctx, s.paths.Consumers())
	if err != nil && !errors.Is(err, zkrecipes.ErrNoNode) {
		return nil, err
	}
	slices.Sort(names)
	up := map[int]bool{}
	for _, b := range snap.Brokers {
		up[b.ID] = b.Status == "up"
	}
	end := func(_ context.Context, tp coordinator.TopicPartition) (int64, error) {
		offs, ok := snap.offsets[tp.BrokerID]
		if !ok || !up[tp.BrokerID] {
			return -1, fmt.Errorf("broker %d is down or not registered: log end unknown", tp.BrokerID)
		}
		return offs[tp.Topic][tp.Partition.Partition][1], nil // never written: 0, as `offset` answers
	}
	out := make([]GroupView, 0, len(names))
	for _, name := range names {
		st, ok, err := clusterview.ReadGroupState(ctx, sess, s.paths, name)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		gv := GroupView{GroupState: st, Partitions: []PartitionLagView{}}
		rows, err := clusterview.GroupPartitions(ctx, sess, s.paths, st, end)
		if err != nil {
			gv.Error = err.Error()
		}
		gv.LagKnown = true
		for _, r := range rows {
			gv.Partitions = append(gv.Partitions, PartitionLagView{GroupPartition: r})
			if r.Lag < 0 {
				gv.LagKnown = false
			} else {
				gv.TotalLag += r.Lag
			}
		}
		out = append(out, gv)
	}
	return out, nil
}

// derive adds what needs the previous cycle: rates, lag trends, stalls,
// transaction ages, and the history rings.
func (s *Server) derive(snap *Snapshot, now time.Time) {
	st := s.st
	dt := now.Sub(st.prevAt).Seconds()
	first := st.prevAt.IsZero()
	st.prevAt = now
	rate := func(cur, prev int64, had bool) float64 {
		if first || !had || dt <= 0 || cur < prev {
			return 0
		}
		return float64(cur-prev) / dt
	}
	consumed := s.deriveGroups(snap, now, dt, first)
	for i := range snap.Topics {
		t := &snap.Topics[i]
		key := "t/" + t.Topic
		prevM, hadM := st.prevMsgs[key]
		prevB := st.prevBytes[key]
		t.PutRate, t.PutBytesRate = rate(t.Messages, prevM, hadM), rate(t.Bytes, prevB, hadM)
		st.prevMsgs[key], st.prevBytes[key] = t.Messages, t.Bytes
		t.ConsumeRate = consumed[t.Topic]
		t.PutHistory = st.hist.push("put/"+t.Topic, t.PutRate)
		t.ConsumeHist = st.hist.push("consume/"+t.Topic, t.ConsumeRate)
	}
	for i := range snap.Brokers {
		b := &snap.Brokers[i]
		key := "b/" + strconv.Itoa(b.ID)
		prev, had := st.prevMsgs[key]
		if b.Status == "up" {
			b.PutRate = rate(b.Puts, prev, had)
			st.prevMsgs[key] = b.Puts
		}
		b.Spark = st.hist.push(key, b.PutRate)
	}
	s.deriveTx(snap, now)
	st.hist.prune()
}

// deriveGroups fills lag trends and stalls and returns the committed bytes
// per second per topic over all groups.
func (s *Server) deriveGroups(snap *Snapshot, now time.Time, dt float64, first bool) map[string]float64 {
	st := s.st
	consumed := map[string]float64{}
	seen := map[string]bool{}
	for i := range snap.Groups {
		g := &snap.Groups[i]
		for j := range g.Partitions {
			p := &g.Partitions[j]
			key := g.Group + "\x00" + p.Topic + "\x00" + p.Partition
			seen[key] = true
			prev, had := st.committed[key]
			if !had || prev != p.Committed {
				st.moved[key] = now
				if had && !first && dt > 0 && p.Committed > prev {
					consumed[p.Topic] += float64(p.Committed-prev) / dt
				}
			}
			st.committed[key] = p.Committed
			p.Stalled = p.Lag > 0 && now.Sub(st.moved[key]) >= s.opts.StallAfter
			if p.Stalled {
				g.Stalled++
			}
			p.LagHistory = st.hist.push("lag/"+key, float64(max(p.Lag, 0)))
		}
		g.LagHistory = st.hist.push("glag/"+g.Group, float64(g.TotalLag))
	}
	for k := range st.committed {
		if !seen[k] {
			delete(st.committed, k)
			delete(st.moved, k)
		}
	}
	return consumed
}

// deriveTx sets how long each prepared transaction has been seen.
func (s *Server) deriveTx(snap *Snapshot, now time.Time) {
	seen := map[string]bool{}
	for i := range snap.Tx {
		t := &snap.Tx[i]
		key := t.Addr + "/" + t.Key
		if t.BrokerID != nil {
			key = strconv.Itoa(*t.BrokerID) + "/" + t.Key
		}
		seen[key] = true
		first, ok := s.st.txSeen[key]
		if !ok {
			first = now
			s.st.txSeen[key] = now
		}
		t.FirstSeen, t.Age = first, now.Sub(first)
	}
	for k := range s.st.txSeen {
		if !seen[k] {
			delete(s.st.txSeen, k)
		}
	}
	slices.SortFunc(snap.Tx, func(a, b TxView) int { return cmp.Compare(b.Age, a.Age) })
}

// addRetention fills each topic's retention from the configuration files of
// the brokers serving it; a file is fetched (`stats config`) only when the
// broker's config_checksum changed.
func (s *Server) addRetention(ctx context.Context, topics []TopicView, brokers []clusterview.Broker, stats map[int]clusterview.BrokerStats) {
	var stale []clusterview.Broker
	for _, br := range brokers {
		st, ok := stats[br.ID]
		if !ok || st.Err != nil {
			continue
		}
		if c, ok := s.st.configs[br.ID]; !ok || c.checksum != st.Stats["config_checksum"] {
			stale = append(stale, br)
		}
	}
	if len(stale) > 0 {
		ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		defer cancel()
		res := clusterview.OnEveryBroker(ctx, stale, "stats config", func(ctx context.Context, c *conn.Conn) ([]byte, error) {
			return c.StatsBody(ctx, "config")
		})
		for id, r := range res {
			if r.Err != nil {
				continue // asked again next cycle
			}
			cfg, err := clusterview.ParseBrokerConfig(r.Val)
			if err != nil {
				s.log.Debug("dashboard: broker configuration", "broker", id, "err", err)
			}
			s.st.configs[id] = brokerConfig{checksum: stats[id].Stats["config_checksum"], cfg: cfg}
		}
	}
	for i := range topics {
		var seen []string
		for _, id := range topics[i].Brokers {
			if c := s.st.configs[id]; c.cfg != nil {
				if r := clusterview.Retention(c.cfg, topics[i].Topic); r != "" && !slices.Contains(seen, r) {
					seen = append(seen, r)
				}
			}
		}
		topics[i].Retention = strings.Join(seen, "; ")
	}
}
