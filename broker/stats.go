package broker

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/metaq-go/metaq/broker/replica"
	"github.com/metaq-go/metaq/protocol"
)

// counters are the broker-wide totals of `stats` (PROTOCOL.md §6).
type counters struct {
	cmdPut, cmdGet, cmdOffset             atomic.Int64
	getMiss, putFailed                    atomic.Int64
	txBegin, txXABegin, txCommit, txRollb atomic.Int64
	txJournalSkipped                      atomic.Int64 // damaged journal records skipped at start
	currConns                             atomic.Int64
	totalConns                            atomic.Int64
	putBytes, getBytes                    atomic.Int64
	handlerPanics                         atomic.Int64
}

// realtime is one `stats realtime` item: a count and a value summed since the
// last reset, as MetaQ's MetaStatLog keeps them (StatConstants: put, get,
// offset, get_miss and put_failed add 1 per request to both; message_size
// adds 1 and the put data's length).
type realtime struct {
	count, value atomic.Int64
}

func (r *realtime) add(v int64) { r.count.Add(1); r.value.Add(v) }

func (r *realtime) addN(n, v int64) { r.count.Add(n); r.value.Add(v) }

func (r *realtime) reset() { r.count.Store(0); r.value.Store(0) }

// format renders the item as MetaStatLog.formatOutput does: numbers through
// DecimalFormat("#.##"), "invalid" for an average over nothing, the duration
// in whole seconds.
func (r *realtime) format(dur int64) string {
	c, v := r.count.Load(), r.value.Load()
	avg, rate := "invalid", "invalid"
	if c != 0 {
		avg = decimalFormat(float64(v) / float64(c))
	}
	if dur != 0 {
		rate = decimalFormat(float64(c) / float64(dur))
	}
	return fmt.Sprintf("Count=%d,Value=%d,Value/Count=%s,Count/Duration=%s,Duration=%d", c, v, avg, rate, dur)
}

// decimalFormat is Java's new DecimalFormat("#.##").format(x): at most two
// decimals, rounded half-even, no trailing zeros, no grouping.
func decimalFormat(x float64) string {
	return strconv.FormatFloat(math.RoundToEven(x*100)/100, 'f', -1, 64)
}

// realtimeSet is the six realtime items, broker-wide or for one topic.
type realtimeSet struct {
	put, get, offset, getMiss, putFailed, msgSize realtime
}

// items lists the items in MetaQ's order under their StatConstants names.
func (rs *realtimeSet) items() []struct {
	name string
	r    *realtime
} {
	return []struct {
		name string
		r    *realtime
	}{{"put", &rs.put}, {"get", &rs.get}, {"offset", &rs.offset},
		{"get_miss", &rs.getMiss}, {"put_failed", &rs.putFailed}, {"message_size", &rs.msgSize}}
}

func (rs *realtimeSet) reset() {
	for _, it := range rs.items() {
		it.r.reset()
	}
}

// topicCounters are per-topic totals, kept for every topic the broker serves.
type topicCounters struct {
	put, get, offset, getMiss, putFailed, putBytes, getBytes atomic.Int64
	rt                                                       realtimeSet
}

type stats struct {
	start time.Time
	c     counters

	rtMu    sync.Mutex // guards rtSince
	rtSince time.Time
	rt      realtimeSet

	topics sync.Map // topic → *topicCounters
}

func newStats() *stats {
	now := time.Now()
	return &stats{start: now, rtSince: now}
}

// topic returns the counters of a topic the broker serves, nil for any other
// name. Only addTopic creates counters, so requests naming ever new topics
// (which the broker refuses) cannot grow the map.
func (s *stats) topic(t string) *topicCounters {
	if v, ok := s.topics.Load(t); ok {
		return v.(*topicCounters)
	}
	return nil
}

// addTopic starts per-topic counters for a topic that has a partition.
func (s *stats) addTopic(t string) { s.topics.LoadOrStore(t, &topicCounters{}) }

func (s *stats) putOK(topic string, n int, bytes int64) {
	s.c.cmdPut.Add(int64(n))
	s.c.putBytes.Add(bytes)
	s.rt.put.addN(int64(n), int64(n))
	s.rt.msgSize.addN(int64(n), bytes)
	if tc := s.topic(topic); tc != nil {
		tc.put.Add(int64(n))
		tc.putBytes.Add(bytes)
		tc.rt.put.addN(int64(n), int64(n))
		tc.rt.msgSize.addN(int64(n), bytes)
	}
}

// putFail counts a refused put. Like MetaQ (processPutCommand calls
// statsPut before anything can fail), cmd_put and the realtime put item
// count it too.
func (s *stats) putFail(topic string) {
	s.c.cmdPut.Add(1)
	s.c.putFailed.Add(1)
	s.rt.put.add(1)
	s.rt.putFailed.add(1)
	if tc := s.topic(topic); tc != nil {
		tc.put.Add(1)
		tc.putFailed.Add(1)
		tc.rt.put.add(1)
		tc.rt.putFailed.add(1)
	}
}

func (s *stats) get(topic string, bytes int64, miss bool) {
	s.c.cmdGet.Add(1)
	s.rt.get.add(1)
	tc := s.topic(topic)
	if tc == nil {
		tc = &topicCounters{} // not a served topic: count broker-wide only
	}
	tc.get.Add(1)
	tc.rt.get.add(1)
	if miss {
		s.c.getMiss.Add(1)
		s.rt.getMiss.add(1)
		tc.getMiss.Add(1)
		tc.rt.getMiss.add(1)
		return
	}
	s.c.getBytes.Add(bytes)
	tc.getBytes.Add(bytes)
}

func (s *stats) offset(topic string) {
	s.c.cmdOffset.Add(1)
	s.rt.offset.add(1)
	if tc := s.topic(topic); tc != nil {
		tc.offset.Add(1)
		tc.rt.offset.add(1)
	}
}

// resetRealtime is `stats reset`: every realtime item, broker-wide and per topic.
func (s *stats) resetRealtime() {
	s.rtMu.Lock()
	s.rtSince = time.Now()
	s.rtMu.Unlock()
	s.rt.reset()
	s.topics.Range(func(_, v any) bool {
		v.(*topicCounters).rt.reset()
		return true
	})
}

// realtimeDuration is the whole seconds since the last reset.
func (s *stats) realtimeDuration() int64 {
	s.rtMu.Lock()
	defer s.rtMu.Unlock()
	return int64(time.Since(s.rtSince) / time.Second)
}

// statsHelp describes every item of `stats <item>`.
var statsHelp = []protocol.StatsLine{
	{Key: "*EMPTY*", Value: "broker-wide counters: connections, commands, messages, topics"},
	{Key: "topics", Value: "per topic: partitions, message count and bytes, accept publish/subscribe"},
	{Key: "offsets", Value: "per partition: min and max offset"},
	{Key: "realtime", Value: "put/get/offset/miss/failure counts and values since the last reset"},
	{Key: "reset", Value: "reset the realtime counters"},
	{Key: "config", Value: "the raw configuration file"},
	{Key: "replication", Value: "role, partition ends, epoch history, and per follower: mode, in_sync, acked_bytes, lag_bytes, lag_ms"},
	{Key: "help", Value: "this list"},
	{Key: "<topic>", Value: "one topic's counters"},
}

// statsBody builds the body of a `stats` reply for item (not "config").
func (b *Broker) statsBody(item string) []byte {
	var lines []protocol.StatsLine
	add := func(k string, v any) { lines = append(lines, protocol.StatsLine{Key: k, Value: fmt.Sprint(v)}) }
	s := b.stats
	switch item {
	case "":
		add("pid", os.Getpid())
		add("broker_id", b.opts.BrokerID)
		add("port", b.Port())
		add("uptime", int64(time.Since(s.start).Seconds()))
		add("version", Version)
		add("slave", b.repl.follower.Load())
		add("curr_connections", s.c.currConns.Load())
		add("threads", runtime.NumGoroutine())
		add("cmd_put", s.c.cmdPut.Load())
		add("cmd_get", s.c.cmdGet.Load())
		add("cmd_offset", s.c.cmdOffset.Load())
		add("tx_begin", s.c.txBegin.Load())
		add("tx_xa_begin", s.c.txXABegin.Load())
		add("tx_commit", s.c.txCommit.Load())
		add("tx_rollback", s.c.txRollb.Load())
		b.tx.txStats(add)
		add("get_miss", s.c.getMiss.Load())
		add("put_failed", s.c.putFailed.Load())
		out := b.output()
		add("buffered_bytes", out.buffered)
		add("max_connection_buffered_bytes", out.peakConn)
		add("paused_connections", out.paused)
		add("handler_panics", s.c.handlerPanics.Load())
		var total int64
		for _, p := range b.store.Partitions() {
			total += p.Stats().Messages
		}
		add("total_messages", total)
		add("topics", len(b.topicNames()))
		add("config_checksum", b.configChecksum)
	case "topics": // StatsManager.appendTopicsInfo: topics with partitions, then configured ones without
		var empty []string
		for _, t := range b.topicNames() {
			parts := b.partitionsOf(t)
			if len(parts) == 0 {
				empty = append(empty, t)
				continue
			}
			cfg, _ := b.opts.Topic(t)
			var count, bytes int64
			for _, p := range parts {
				st := p.Stats()
				count += st.Messages
				bytes += st.Bytes
			}
			lines = append(lines, protocol.StatsLine{Key: t, Value: "partitions " + strconv.Itoa(len(parts)) +
				" message_count " + strconv.FormatInt(count, 10) + " message_bytes " + strconv.FormatInt(bytes, 10) +
				" accept_publish " + strconv.FormatBool(cfg.AcceptPublish) + " accept_subscribe " + strconv.FormatBool(cfg.AcceptSubscribe)})
		}
		for _, t := range empty {
			add(t, "*Empty*")
		}
	case "offsets":
		for _, p := range b.store.Partitions() {
			lines = append(lines, protocol.StatsLine{Key: p.Topic(), Value: "part " + strconv.Itoa(p.ID()) +
				" min_offset " + strconv.FormatInt(p.Earliest(), 10) + " max_offset " + strconv.FormatInt(b.readableEnd(p), 10)})
		}
	case "realtime":
		dur := s.realtimeDuration()
		for _, it := range s.rt.items() {
			add("realtime_"+it.name, it.r.format(dur))
		}
	case replica.StatsItem:
		b.replicationStats(add)
	case "help":
		lines = statsHelp
	case "reset":
		s.resetRealtime()
		lines = []protocol.StatsLine{{Key: "reset", Value: "ok"}}
	default:
		lines = b.topicStats(item)
	}
	return protocol.AppendStatsBody(nil, lines)
}

// topicStats is `stats <topic>` in MetaQ's layout (StatsManager.appendTopic):
// the topic alone on the first line; resultCode 0 (served), 1 (not a topic
// of this broker) or 2 (accepted, no partition yet); partitions (open ones),
// message_count, bytes and the topic_realtime_* items. Our extra counters
// follow under keys MetaQ does not use.
func (b *Broker) topicStats(item string) []protocol.StatsLine {
	var lines []protocol.StatsLine
	add := func(k string, v any) { lines = append(lines, protocol.StatsLine{Key: k, Value: fmt.Sprint(v)}) }
	s := b.stats
	parts := b.partitionsOf(item)
	code := 0
	if len(parts) == 0 {
		code = 1
		if _, ok := b.opts.Topic(item); ok {
			code = 2
		}
	}
	var count, bytes int64
	for _, p := range parts {
		st := p.Stats()
		count += st.Messages
		bytes += st.Bytes
	}
	tc := s.topic(item)
	if tc == nil {
		tc = &topicCounters{} // never opened: all zero
	}
	lines = append(lines, protocol.StatsLine{Key: item})
	add("resultCode", code)
	add("partitions", len(parts))
	add("message_count", count)
	add("bytes", bytes)
	dur := s.realtimeDuration()
	for _, it := range tc.rt.items() {
		add("topic_realtime_"+it.name, it.r.format(dur))
	}
	add("cmd_put", tc.put.Load())
	add("cmd_get", tc.get.Load())
	add("cmd_offset", tc.offset.Load())
	add("get_miss", tc.getMiss.Load())
	add("put_failed", tc.putFailed.Load())
	add("put_bytes", tc.putBytes.Load())
	add("get_bytes", tc.getBytes.Load())
	add("message_bytes", bytes)
	return lines
}

// topicNames lists the topics with at least one open partition or a configured section.
func (b *Broker) topicNames() []string {
	seen := map[string]bool{}
	for _, t := range b.opts.Topics {
		seen[t] = true
	}
	for _, p := range b.store.Partitions() {
		seen[p.Topic()] = true
	}
	delete(seen, txStreamTopic) // internal: never registered, listed or counted as a topic
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// outputState is the unsent-output accounting of the server.
type outputState struct{ buffered, peakConn, paused int64 }

func (b *Broker) output() outputState {
	s := b.srv
	if s == nil {
		return outputState{}
	}
	return outputState{buffered: s.buffered.Load(), peakConn: s.peakConn.Load(), paused: s.pausedConns.Load()}
}
