package clusterview

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseReplicationStatsLines(t *testing.T) {
	got := parseReplicationStats(map[string][]string{"slave": {
		"1 mode sync in_sync true acked_bytes 4096 lag_bytes 0 lag_ms 0",
		"2 mode async in_sync false acked_bytes 100 lag_bytes 3996 lag_ms 1500",
		"garbage", "x mode sync",
	}})
	require.Equal(t, map[int]followerStats{
		1: {mode: "sync", inSync: true, acked: 4096},
		2: {mode: "async", acked: 100, lagBytes: 3996, lagM: 1500},
	}, got)
}
