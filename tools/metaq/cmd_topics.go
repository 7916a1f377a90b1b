package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes"
)

func newTopicsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "list and describe topics registered in ZooKeeper",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("topics: missing subcommand: use `metaq topics list` or `metaq topics describe TOPIC`")}
		},
	}
	cmd.AddCommand(newTopicsListCmd(g), newTopicsDescribeCmd(g))
	return cmd
}

// topicListRow is one line of `metaq topics list`.
type topicListRow struct {
	Topic         string `json:"topic"`
	Brokers       []int  `json:"brokers"`
	PubPartitions int    `json:"pub_partitions"` // over all brokers
	SubPartitions int    `json:"sub_partitions"`
}

func newTopicsListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "topics with the brokers that serve them and their partition counts (from topics-pub/topics-sub)",
		Example: "  metaq topics list --zk 127.0.0.1:2181",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			topics, err := withZK(cmd.Context(), g, 1, listTopics)
			if err != nil {
				return err
			}
			rows := make([]topicListRow, 0, len(topics))
			for _, t := range topics {
				r := topicListRow{Topic: t.Topic, Brokers: t.brokerIDs()}
				for _, n := range t.Pub {
					r.PubPartitions += n
				}
				for _, n := range t.Sub {
					r.SubPartitions += n
				}
				rows = append(rows, r)
			}
			return printList(cmd.OutOrStdout(), g, rows, "no topics registered under "+g.paths().TopicsPub(), printTopicList)
		},
	}
}

func printTopicList(w io.Writer, rows []topicListRow) error {
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = []string{r.Topic, joinInts(r.Brokers), strconv.Itoa(r.PubPartitions), strconv.Itoa(r.SubPartitions)}
	}
	return printTable(w, []string{"TOPIC", "BROKERS", "PUB_PARTITIONS", "SUB_PARTITIONS"}, out)
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// partitionRow is one partition in `metaq topics describe`.
type partitionRow struct {
	Partition string `json:"partition"` // <brokerId>-<n>, MetaQ's name
	BrokerID  int    `json:"broker_id"`
	Index     int    `json:"index"`
	Broker    string `json:"broker"` // master URI
	Pub       bool   `json:"pub"`
	Sub       bool   `json:"sub"`
	MinOffset *int64 `json:"min_offset"` // nil when the broker did not answer
	MaxOffset *int64 `json:"max_offset"`
	Error     string `json:"error,omitempty"`
}

type topicDescription struct {
	Topic      string         `json:"topic"`
	Partitions []partitionRow `json:"partitions"`
}

func newTopicsDescribeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "describe TOPIC",
		Short:   "partitions of a topic per broker, with min/max offsets from each broker's `stats offsets`",
		Example: "  metaq topics describe orders --zk 127.0.0.1:2181 -o json",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := describeTopic(cmd.Context(), g, args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if g.output() == "json" {
				return printJSON(w, d)
			}
			return printTopicDescription(w, d)
		},
	}
}

func describeTopic(ctx context.Context, g *globals, topic string) (topicDescription, error) {
	if err := protocol.ValidTopic(topic); err != nil {
		return topicDescription{}, usageError{err}
	}
	return withZK(ctx, g, 1, func(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) (topicDescription, error) {
		return readTopicDescription(ctx, g, s, p, topic)
	})
}

func readTopicDescription(ctx context.Context, g *globals, s *zkrecipes.Session, p coordinator.Paths, topic string) (topicDescription, error) {
	pub, err := readTopicRegs(ctx, s, p.TopicsPub()+"/"+topic)
	if err != nil {
		return topicDescription{}, err
	}
	sub, err := readTopicRegs(ctx, s, p.TopicSubDir(topic))
	if err != nil {
		return topicDescription{}, err
	}
	if len(pub) == 0 && len(sub) == 0 {
		return topicDescription{}, fmt.Errorf("topic %q is not registered by any broker under %s or %s: check the name with `metaq topics list`",
			topic, p.TopicsPub(), p.TopicsSub())
	}
	t := topicReg{Topic: topic, Pub: pub, Sub: sub}
	brokers, err := listBrokers(ctx, s, p)
	if err != nil {
		return topicDescription{}, err
	}
	var serving []brokerReg
	uri := map[int]string{}
	for _, br := range brokers {
		if _, ok := pub[br.ID]; ok {
			serving = append(serving, br)
		} else if _, ok := sub[br.ID]; ok {
			serving = append(serving, br)
		}
		uri[br.ID] = br.URI
	}
	offsets := collectOffsets(ctx, g, serving, topic)
	d := topicDescription{Topic: topic}
	for _, id := range t.brokerIDs() {
		n := max(pub[id], sub[id])
		for i := 0; i < n; i++ {
			r := partitionRow{Partition: coordinator.PartitionName(id, i), BrokerID: id, Index: i, Broker: uri[id],
				Pub: i < pub[id], Sub: i < sub[id]}
			o := offsets[id]
			switch {
			case o.err != nil:
				r.Error = o.err.Error()
			case o.parts[i] != nil:
				r.MinOffset, r.MaxOffset = &o.parts[i][0], &o.parts[i][1]
			default:
				r.Error = "not in the broker's stats offsets"
			}
			d.Partitions = append(d.Partitions, r)
		}
	}
	return d, nil
}

type brokerOffsets struct {
	parts map[int]*[2]int64 // partition → min, max
	err   error
}

// collectOffsets asks each broker for `stats offsets` and keeps topic's lines.
func collectOffsets(ctx context.Context, g *globals, brokers []brokerReg, topic string) map[int]brokerOffsets {
	raw := collectLines(ctx, g, brokers, "offsets")
	out := map[int]brokerOffsets{}
	for id, r := range raw {
		bo := brokerOffsets{parts: map[int]*[2]int64{}, err: r.err}
		for _, l := range r.lines {
			if l.Key != topic {
				continue
			}
			obj, ok := statsValue(l.Value).(map[string]any)
			if !ok {
				continue
			}
			part, ok1 := obj["part"].(int64)
			lo, ok2 := obj["min_offset"].(int64)
			hi, ok3 := obj["max_offset"].(int64)
			if ok1 && ok2 && ok3 {
				bo.parts[int(part)] = &[2]int64{lo, hi}
			}
		}
		out[id] = bo
	}
	for _, br := range brokers {
		if _, ok := out[br.ID]; !ok {
			out[br.ID] = brokerOffsets{err: fmt.Errorf("broker %d is not registered (no master node): offsets unknown", br.ID)}
		}
	}
	return out
}

type linesOrErr struct {
	lines []protocol.StatsLine
	err   error
}

// collectLines asks every registered broker for `stats <item>`, concurrently.
func collectLines(ctx context.Context, g *globals, brokers []brokerReg, item string) map[int]linesOrErr {
	res := onEveryBroker(ctx, g, brokers, fmt.Sprintf("stats %q", item), func(ctx context.Context, c *conn.Conn) ([]protocol.StatsLine, error) {
		return c.Stats(ctx, item)
	})
	out := make(map[int]linesOrErr, len(res))
	for id, r := range res {
		out[id] = linesOrErr{r.val, r.err}
	}
	return out
}

func printTopicDescription(w io.Writer, d topicDescription) error {
	fmt.Fprintf(w, "Topic: %s\n\n", d.Topic)
	rows := make([][]string, 0, len(d.Partitions))
	sort.SliceStable(d.Partitions, func(i, j int) bool {
		a, b := d.Partitions[i], d.Partitions[j]
		return a.BrokerID < b.BrokerID || a.BrokerID == b.BrokerID && a.Index < b.Index
	})
	for _, r := range d.Partitions {
		lo, hi := "-", "-"
		if r.MinOffset != nil {
			lo, hi = strconv.FormatInt(*r.MinOffset, 10), strconv.FormatInt(*r.MaxOffset, 10)
		}
		rows = append(rows, []string{r.Partition, orDash(r.Broker), yesNo(r.Pub), yesNo(r.Sub), lo, hi, orDash(r.Error)})
	}
	return printTable(w, []string{"PARTITION", "BROKER", "PUB", "SUB", "MIN_OFFSET", "MAX_OFFSET", "ERROR"}, rows)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
