package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/go-zookeeper/zk"
)

// Topics that appear when first used. A broker configured with wildcard
// sections ([topic=orders*]) or autoCreateTopics=true accepts topics it has
// not registered yet: it creates and registers one on its first put. A
// producer that discovers partitions through topics-pub finds none for such a
// topic, so brokers also publish the topics they accept, in the order their
// configuration resolves a name, under brokers/metaq/accept/<brokerId>
// (paths.go). A ClusterView made WithAcceptedTopics routes a topic nobody has
// registered to the brokers whose list lets them take it for publishing
// (MetaQ's producer has the same idea with its defaultTopic); once the first
// put has registered the topic, its registration rules as usual. MetaQ
// clients never read these nodes.

// TopicPattern is one entry of the topics a broker accepts: a topic name or a
// pattern where '*' matches any run of characters (autoCreateTopics is "*"),
// and what the broker does with a topic it resolves to this entry.
type TopicPattern struct {
	Pattern       string `json:"pattern"`
	NumPartitions int    `json:"numParts"`
	AcceptPublish bool   `json:"acceptPublish"`
}

// acceptedTopics is the JSON of brokers/metaq/accept/<brokerId>: the entries
// in the broker's order of precedence (named sections, then wildcard sections
// most specific first, then "*" for autoCreateTopics); the first match rules.
type acceptedTopics struct {
	Topics []TopicPattern `json:"topics"`
}

// MatchTopicPattern reports whether topic matches pattern, where '*' matches
// any run of characters, including none.
func MatchTopicPattern(pattern, topic string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == topic
	}
	first, last := parts[0], parts[len(parts)-1]
	if len(topic) < len(first)+len(last) || !strings.HasPrefix(topic, first) || !strings.HasSuffix(topic, last) {
		return false
	}
	rest := topic[len(first) : len(topic)-len(last)]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(rest, mid)
		if i < 0 {
			return false
		}
		rest = rest[i+len(mid):]
	}
	return true
}

// acceptingPartitions returns how many partitions a broker publishing list
// gives topic (0: it does not take it for publishing).
func acceptingPartitions(list []TopicPattern, topic string) int {
	for _, tp := range list {
		if MatchTopicPattern(tp.Pattern, topic) {
			if tp.AcceptPublish && tp.NumPartitions > 0 {
				return tp.NumPartitions
			}
			return 0
		}
	}
	return 0
}

// registerAccepts publishes (or, with none, removes) the broker's accepted
// topics node.
func (r *Registrar) registerAccepts(ctx context.Context) error {
	p := r.paths.BrokerAccepts(r.info.ID)
	if len(r.info.AcceptedTopics) == 0 {
		return r.s.DeleteIfExists(ctx, p)
	}
	js, err := json.Marshal(acceptedTopics{Topics: r.info.AcceptedTopics})
	if err != nil {
		return err
	}
	return r.ensureEphemeral(ctx, p, js, false)
}

// WithAcceptedTopics makes the view give a topic that no broker has
// registered for publishing the partitions of the live brokers that accept
// it (brokers/metaq/accept), so a producer can send the message that creates
// it. Producers use it; a consumer's view does not.
func WithAcceptedTopics() ClusterViewOption {
	return func(v *ClusterView) { v.acceptLoaded = make(chan struct{}) }
}

// acceptLoop keeps v.accepts current: the children of brokers/metaq/accept
// and each one's data, re-read on any change.
func (v *ClusterView) acceptLoop() {
	defer v.wg.Done()
	ctx := v.ctx
	dir := v.paths.BrokerAcceptsDir()
	for attempt := 0; ; {
		id := v.s.ID()
		accepts, watches, err := v.readAccepts(ctx, dir)
		if errors.Is(err, errRetryNow) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			v.log.Warn("cluster view: reading accepted topics", "err", err)
			if attempt++; !v.pause(attempt) {
				return
			}
			continue
		}
		attempt = 0
		v.mu.Lock()
		v.accepts = accepts
		select {
		case <-v.acceptLoaded:
		default:
			close(v.acceptLoaded)
		}
		v.recomputeLocked(false)
		v.mu.Unlock()
		if !v.awaitAny(id, watches) {
			return
		}
	}
}

// readAccepts lists dir and reads every broker's node, with watches on the
// list and on each node.
func (v *ClusterView) readAccepts(ctx context.Context, dir string) (map[int][]TopicPattern, []<-chan zk.Event, error) {
	names, _, w, err := v.s.ChildrenW(ctx, dir)
	if errors.Is(err, zk.ErrNoNode) {
		ok, _, ew, err := v.s.ExistsW(ctx, dir)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			return nil, nil, errRetryNow
		}
		return map[int][]TopicPattern{}, []<-chan zk.Event{ew}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	watches := []<-chan zk.Event{w}
	out := map[int][]TopicPattern{}
	for _, n := range names {
		id, err := strconv.Atoi(n)
		if err != nil || id < 0 {
			continue
		}
		data, _, nw, err := v.s.GetW(ctx, dir+"/"+n)
		if errors.Is(err, zk.ErrNoNode) {
			continue // gone meanwhile; the child watch fires
		}
		if err != nil {
			return nil, nil, err
		}
		watches = append(watches, nw)
		var at acceptedTopics
		if err := json.Unmarshal(data, &at); err != nil {
			v.log.Warn("cluster view: bad accepted-topics node", "path", dir+"/"+n, "err", err)
			continue
		}
		out[id] = at.Topics
	}
	return out, watches, nil
}

// awaitAny waits for any of the watches, the loss of session id, or Close.
func (v *ClusterView) awaitAny(id int64, watches []<-chan zk.Event) bool {
	ctx, cancel := context.WithCancel(v.ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	fired := make(chan zk.Event, 1)
	for _, w := range watches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case ev := <-w:
				select {
				case fired <- ev:
				default:
				}
			case <-ctx.Done():
			}
		}()
	}
	return v.await(id, fired, nil)
}

// acceptedPartitionsLocked is what WithAcceptedTopics gives a topic nobody
// registered: every live broker that takes it for publishing, by broker id.
// Call with v.mu held.
func (v *ClusterView) acceptedPartitionsLocked(topic string) []BrokerPartition {
	ids := make([]int, 0, len(v.accepts))
	for id := range v.accepts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var ps []BrokerPartition
	for _, id := range ids {
		m := v.masters[id]
		if m == nil || m.addr == "" {
			continue
		}
		for p := range acceptingPartitions(v.accepts[id], topic) {
			ps = append(ps, BrokerPartition{BrokerID: id, Partition: p, Addr: m.addr})
		}
	}
	return ps
}
