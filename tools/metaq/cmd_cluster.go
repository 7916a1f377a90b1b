package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
)

// brokerReg is one broker id registered in ZooKeeper.
type brokerReg struct {
	ID             int      `json:"id"`
	URI            string   `json:"uri"`            // master URI; "" when no master is registered
	Addr           string   `json:"addr,omitempty"` // host:port of URI
	Registered     bool     `json:"registered"`     // the ephemeral master node exists
	Slaves         []string `json:"slaves,omitempty"`
	ConfigChecksum string   `json:"config_checksum,omitempty"`
}

// listBrokers reads brokers/ids. An id whose ephemeral master node is gone
// (a stopped broker leaves its persistent id node) has Registered false.
func listBrokers(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) ([]brokerReg, error) {
	ids, _, err := s.Children(ctx, p.BrokerIDs())
	if errors.Is(err, zkrecipes.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", p.BrokerIDs(), err)
	}
	var out []brokerReg
	for _, name := range ids {
		id, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		br := brokerReg{ID: id}
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

// topicReg is a topic's registrations: partitions per broker for publish and subscribe.
type topicReg struct {
	Topic string      `json:"topic"`
	Pub   map[int]int `json:"pub"` // broker id → partitions (topics-pub)
	Sub   map[int]int `json:"sub"` // broker id → partitions (topics-sub)
}

// brokerIDs returns the ids of every broker that registered the topic.
func (t topicReg) brokerIDs() []int {
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

// listTopics reads topics-pub and topics-sub (masters only).
func listTopics(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) ([]topicReg, error) {
	byName := map[string]*topicReg{}
	get := func(name string) *topicReg {
		if t := byName[name]; t != nil {
			return t
		}
		t := &topicReg{Topic: name, Pub: map[int]int{}, Sub: map[int]int{}}
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
			regs, err := readTopicRegs(ctx, s, side.parent+"/"+topic)
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
	out := make([]topicReg, 0, len(byName))
	for _, t := range byName {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out, nil
}

// readTopicRegs reads the <brokerId>-m children of one topic node:
// JSON {"numParts":N,...} or a bare decimal.
func readTopicRegs(ctx context.Context, s *zkrecipes.Session, dir string) (map[int]int, error) {
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

// brokerStats is what one broker answered to `stats`.
type brokerStats struct {
	Stats   map[string]string
	Version string
	Err     error
}

// collectStats asks every registered broker for `stats <item>`, concurrently.
func collectStats(ctx context.Context, g *globals, brokers []brokerReg, item string) map[int]brokerStats {
	out := map[int]brokerStats{}
	for id, r := range collectLines(ctx, g, brokers, item) {
		if r.err != nil {
			out[id] = brokerStats{Err: r.err}
			continue
		}
		m := statsMap(r.lines)
		out[id] = brokerStats{Stats: m, Version: m["version"]}
	}
	return out
}

// clusterReport is the output of `metaq cluster`.
type clusterReport struct {
	ZooKeeper zkStatus        `json:"zookeeper"`
	Topics    int             `json:"topics"`
	Brokers   []clusterBroker `json:"brokers"`
	// Replication lists the replica sets (broker ids with slaves or an epoch).
	Replication []replicaSetReport `json:"replication,omitempty"`
}

type zkStatus struct {
	Servers   []string `json:"servers"`
	Root      string   `json:"root"`
	State     string   `json:"state"`
	SessionID string   `json:"session_id"`
	Timeout   string   `json:"session_timeout"`
}

type clusterBroker struct {
	brokerReg
	Status string `json:"status"` // up, unreachable, not registered
	Topics int    `json:"topics"` // from the broker's stats; -1 when unknown
	Error  string `json:"error,omitempty"`
}

func zkStatusOf(s *zkrecipes.Session, g *globals, p coordinator.Paths) zkStatus {
	return zkStatus{Servers: g.zkServers(), Root: p.Root, State: s.State().String(),
		SessionID: fmt.Sprintf("0x%x", s.ID()), Timeout: s.Timeout().String()}
}

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "cluster",
		Short:   "overview: ZooKeeper status, registered brokers with their URIs and topic counts, masters and slaves",
		Example: "  metaq cluster --zk 127.0.0.1:2181\n  metaq cluster --zk zk1:2181,zk2:2181 -o json",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := clusterOverview(cmd.Context(), g)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if g.output() == "json" {
				return printJSON(w, rep)
			}
			return printCluster(w, rep)
		},
	}
	cmd.AddCommand(newClusterPromoteCmd(g))
	return cmd
}

func clusterOverview(ctx context.Context, g *globals) (clusterReport, error) {
	return withZK(ctx, g, 1, func(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) (clusterReport, error) {
		return readClusterReport(ctx, g, s, p)
	})
}

func readClusterReport(ctx context.Context, g *globals, s *zkrecipes.Session, p coordinator.Paths) (clusterReport, error) {
	brokers, err := listBrokers(ctx, s, p)
	if err != nil {
		return clusterReport{}, err
	}
	topics, err := listTopics(ctx, s, p)
	if err != nil {
		return clusterReport{}, err
	}
	stats := collectStats(ctx, g, brokers, "")
	rep := clusterReport{ZooKeeper: zkStatusOf(s, g, p), Topics: len(topics), Brokers: []clusterBroker{}}
	for _, br := range brokers {
		cb := clusterBroker{brokerReg: br, Status: "not registered", Topics: -1}
		if br.Registered {
			st := stats[br.ID]
			if st.Err != nil {
				cb.Status, cb.Error = "unreachable", st.Err.Error()
			} else {
				cb.Status = "up"
				if n, err := strconv.Atoi(st.Stats["topics"]); err == nil {
					cb.Topics = n
				}
			}
		}
		rep.Brokers = append(rep.Brokers, cb)
	}
	if rep.Replication, err = readReplication(ctx, g, s, p, brokers); err != nil {
		return clusterReport{}, err
	}
	return rep, nil
}

func printCluster(w io.Writer, rep clusterReport) error {
	z := rep.ZooKeeper
	fmt.Fprintf(w, "ZooKeeper: %s (%s, session %s, timeout %s)\n", strings.Join(z.Servers, ","), z.State, z.SessionID, z.Timeout)
	fmt.Fprintf(w, "Root:      %s\n", z.Root)
	fmt.Fprintf(w, "Brokers:   %d\n", len(rep.Brokers))
	fmt.Fprintf(w, "Topics:    %d\n\n", rep.Topics)
	rows := make([][]string, 0, len(rep.Brokers))
	for _, b := range rep.Brokers {
		topics := "-"
		if b.Topics >= 0 {
			topics = strconv.Itoa(b.Topics)
		}
		rows = append(rows, []string{strconv.Itoa(b.ID), orDash(b.URI), b.Status, topics, orDash(b.Error)})
	}
	if err := printTable(w, []string{"ID", "URI", "STATUS", "TOPICS", "ERROR"}, rows); err != nil {
		return err
	}
	return printReplication(w, rep.Replication)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// brokerRow is one line of `metaq brokers`.
type brokerRow struct {
	brokerReg
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

func newBrokersCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "brokers",
		Short:   "list brokers registered in ZooKeeper with live stats (uptime, connections, messages)",
		Example: "  metaq brokers --zk 127.0.0.1:2181",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			rows, err := withZK(cmd.Context(), g, 1, func(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) ([]brokerRow, error) {
				brokers, err := listBrokers(ctx, s, p)
				if err != nil {
					return nil, err
				}
				stats := collectStats(ctx, g, brokers, "")
				rows := make([]brokerRow, 0, len(brokers))
				for _, br := range brokers {
					rows = append(rows, brokerRowOf(br, stats[br.ID]))
				}
				return rows, nil
			})
			if err != nil {
				return err
			}
			return printList(cmd.OutOrStdout(), g, rows, "no brokers registered under "+g.paths().BrokerIDs(), printBrokers)
		},
	}
}

func brokerRowOf(br brokerReg, st brokerStats) brokerRow {
	r := brokerRow{brokerReg: br, Status: "not registered"}
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

func printBrokers(w io.Writer, rows []brokerRow) error {
	out := make([][]string, 0, len(rows))
	for _, r := range rows {
		if r.Status != "up" {
			out = append(out, []string{strconv.Itoa(r.ID), orDash(r.URI), r.Status, "-", "-", "-", "-", "-", "-", orDash(r.Error)})
			continue
		}
		out = append(out, []string{strconv.Itoa(r.ID), r.URI, r.Status, r.Version,
			(time.Duration(r.Uptime) * time.Second).String(), strconv.FormatInt(r.Connections, 10),
			strconv.FormatInt(r.Messages, 10), strconv.FormatInt(r.Puts, 10), strconv.FormatInt(r.Gets, 10), "-"})
	}
	return printTable(w, []string{"ID", "URI", "STATUS", "VERSION", "UPTIME", "CONNECTIONS", "MESSAGES", "PUTS", "GETS", "ERROR"}, out)
}

// usageArgs makes cobra's argument-count errors usage errors (exit 2).
func usageArgs(fn cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := fn(cmd, args); err != nil {
			return usageError{fmt.Errorf("%s: %w (see `%s --help`)", cmd.CommandPath(), err, cmd.CommandPath())}
		}
		return nil
	}
}
