package main

import (
	"context"
	"log/slog"
	"testing"

	"github.com/metaq-go/metaq/broker"
)

type fixedSnapshot broker.Snapshot

func (f fixedSnapshot) Snapshot() broker.Snapshot { return broker.Snapshot(f) }

// The master's followers appear as metaq_replica_lag_bytes and
// metaq_replica_in_sync gauges labelled by member.
func TestAdminReplicaGauges(t *testing.T) {
	snap := fixedSnapshot{Replicas: []broker.ReplicaSnapshot{
		{Member: 1, Sync: true, InSync: true, LagBytes: 0},
		{Member: 2, InSync: false, LagBytes: 4096},
	}}
	a, err := startAdmin("127.0.0.1:0", snap, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	mfs := scrape(t, a.Addr())
	for _, tc := range []struct {
		name   string
		member string
		want   float64
	}{
		{"metaq_replica_in_sync", "1", 1},
		{"metaq_replica_lag_bytes", "1", 0},
		{"metaq_replica_in_sync", "2", 0},
		{"metaq_replica_lag_bytes", "2", 4096},
	} {
		if got := metricValue(t, mfs, tc.name, "member", tc.member); got != tc.want {
			t.Errorf("%s{member=%s} = %v, want %v", tc.name, tc.member, got, tc.want)
		}
	}
}
