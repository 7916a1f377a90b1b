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
	"github.com/metaq-go/metaq/internal/clusterview"
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
			topics, err := withZK(cmd.Context(), g, 1, clusterview.ListTopics)
			if err != nil {
				return err
			}
			rows := make([]topicListRow, 0, len(topics))
			for _, t := range topics {
				r := topicListRow{Topic: t.Topic, Brokers: t.BrokerIDs()}
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

func describeTopic(ctx context.Context, g *globals, topic string) (clusterview.TopicDescription, error) {
	if err := protocol.ValidTopic(topic); err != nil {
		return clusterview.TopicDescription{}, usageError{err}
	}
	return withZK(ctx, g, 1, func(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) (clusterview.TopicDescription, error) {
		return clusterview.DescribeTopic(ctx, s, p, topic)
	})
}

func printTopicDescription(w io.Writer, d clusterview.TopicDescription) error {
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
