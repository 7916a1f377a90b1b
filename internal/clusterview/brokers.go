package clusterview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
)

// Broker is one broker id registered in ZooKeeper.
type Broker struct {
	ID             int      `json:"id"`
	URI            string   `json:"uri"`            // master URI; "" when no master is registered
	Addr           string   `json:"addr,omitempty"` // host:port of URI
	Registered     bool     `json:"registered"`     // the ephemeral master node exists
	Slaves         []string `json:"slaves,omitempty"`
	ConfigChecksum string   `json:"config_checksum,omitempty"`
}

// ListBrokers reads brokers/ids. An id whose ephemeral master node is gone
// (a stopped broker leaves its persistent id node) has Registered false.
func ListBrokers(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) ([]Broker, error) {
	ids, _, err := s.Children(ctx, p.BrokerIDs())
	if errors.Is(err, zkrecipes.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", p.BrokerIDs(), err)
	}
	var out []Broker
	for _, name := range ids {
		id, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		br := Broker{ID: id}
		data, _, err := s.Get(ctx, p.BrokerMaster(id))
		switch {
		case err == nil:
			br.URI, br.Registered = string(data), true
			if addr, err := coordinator.ParseBrokerURI(br.URI); err == nil {
				br.Addr = addr
			}
		case errors.Is(err, zkrecipes.ErrNoNode):
		default:
			return nil, fmt.Errorf("read %s: %w", p.BrokerMaster(id), err)
		}
		if data, _, err := s.Get(ctx, p.BrokerConfigChecksum(id)); err == nil {
			br.ConfigChecksum = string(data)
		}
		kids, _, err := s.Children(ctx, p.BrokerID(id))
		if err == nil {
			sort.Strings(kids)
			for _, k := range kids {
				if strings.HasPrefix(k, "slave") {
					if d, _, err := s.Get(ctx, p.BrokerID(id)+"/"+k); err == nil {
						br.Slaves = append(br.Slaves, string(d))
					}
				}
			}
		}
		out = append(out, br)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// TopicReg is a topic's registrations: partitions per broker for publish and subscribe.
type TopicReg struct {
	Topic string      `json:"topic"`
	Pub   map[int]int `json:"pub"` // broker id → partitions (topics-pub)
	Sub   map[int]int `json:"sub"` // broker id → partitions (topics-sub)
}

// BrokerIDs returns the ids of every broker that registered the topic.
func (t TopicReg) BrokerIDs() []int {
	seen := map[int]bool{}
	for id := range t.Pub {
		seen[id] = true
	}
	for id := range t.Sub {
		seen[id] = true
	}
	ids := make([]int, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// ListTopics reads topics-pub and topics-sub (masters only).
func ListTopics(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) ([]TopicReg, error) {
	byName := map[string]*TopicReg{}
	get := func(name string) *TopicReg {
		if t := byName[name]; t != nil {
			return t
		}
		t := &TopicReg{Topic: name, Pub: map[int]int{}, Sub: map[int]int{}}
		byName[name] = t
		return t
	}
	for _, side := range []struct {
		parent string
		pub    bool
	}{{p.TopicsPub(), true}, {p.TopicsSub(), false}} {
		topics, _, err := s.Children(ctx, side.parent)
		if errors.Is(err, zkrecipes.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", side.parent, err)
		}
		for _, topic := range topics {
			regs, err := ReadTopicRegs(ctx, s, side.parent+"/"+topic)
			if err != nil {
				return nil, err
			}
			if len(regs) == 0 {
				continue
			}
			t := get(topic)
			for id, n := range regs {
				if side.pub {
					t.Pub[id] = n
				} else {
					t.Sub[id] = n
				}
			}
		}
	}
	out := make([]TopicReg, 0, len(byName))
	for _, t := range byName {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out, nil
}

// ReadTopicRegs reads the <brokerId>-m children of one topic node:
// JSON {"numParts":N,...} or a bare decimal.
func ReadTopicRegs(ctx context.Context, s *zkrecipes.Session, dir string) (map[int]int, error) {
	names, _, err := s.Children(ctx, dir)
	if errors.Is(err, zkrecipes.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	out := map[int]int{}
	for _, name := range names {
		id, master, err := coordinator.ParseBrokerNodeName(name)
		if err != nil || !master {
			continue
		}
		data, _, err := s.Get(ctx, dir+"/"+name)
		if errors.Is(err, zkrecipes.ErrNoNode) {
			continue // deregistered meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read %s/%s: %w", dir, name, err)
		}
		var reg struct {
			NumParts int `json:"numParts"`
		}
		if json.Unmarshal(data, &reg) != nil {
			reg.NumParts, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		}
		out[id] = reg.NumParts
	}
	return out, nil
}

// BrokerStats is what one broker answered to `stats`.
type BrokerStats struct {
	Stats   map[string]string
	Version string
	Err     error
}

// CollectStats asks every registered broker for `stats <item>`, concurrently.
func CollectStats(ctx context.Context, brokers []Broker, item string) map[int]BrokerStats {
	out := map[int]BrokerStats{}
	for id, r := range CollectLines(ctx, brokers, item) {
		if r.Err != nil {
			out[id] = BrokerStats{Err: r.Err}
			continue
		}
		m := StatsMap(r.Lines)
		out[id] = BrokerStats{Stats: m, Version: m["version"]}
	}
	return out
}

// BrokerRow is one line of `metaq brokers`.
type BrokerRow struct {
	Broker
	Status      string `json:"status"`
	Version     string `json:"version,omitempty"`
	Uptime      int64  `json:"uptime_seconds"`
	Connections int64  `json:"connections"`
	Messages    int64  `json:"messages"`
	Puts        int64  `json:"puts"`
	Gets        int64  `json:"gets"`
	Topics      int64  `json:"topics"`
	Error       string `json:"error,omitempty"`
}

// BrokerRowOf is the `metaq brokers` line of br from its stats.
func BrokerRowOf(br Broker, st BrokerStats) BrokerRow {
	r := BrokerRow{Broker: br, Status: "not registered"}
	if !br.Registered {
		return r
	}
	if st.Err != nil {
		r.Status, r.Error = "unreachable", st.Err.Error()
		return r
	}
	r.Status, r.Version = "up", st.Version
	num := func(k string) int64 { n, _ := strconv.ParseInt(st.Stats[k], 10, 64); return n }
	r.Uptime, r.Connections, r.Messages = num("uptime"), num("curr_connections"), num("total_messages")
	r.Puts, r.Gets, r.Topics = num("cmd_put"), num("cmd_get"), num("topics")
	return r
}
