package broker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFailureDelayGrowsPerAddressAndIsCapped(t *testing.T) {
	ft := newFailureTracker(100*time.Millisecond, time.Second)
	now := time.Unix(1000, 0)
	var got []time.Duration
	for i := 0; i < 6; i++ {
		d, n := ft.fail("10.0.0.1", now)
		require.Equal(t, i+1, n)
		got = append(got, d)
	}
	require.Equal(t, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, time.Second, time.Second}, got)
	d, n := ft.fail("10.0.0.2", now)
	require.Equal(t, 100*time.Millisecond, d, "another address starts afresh")
	require.Equal(t, 1, n)
	d, n = ft.fail("10.0.0.1", now.Add(2*time.Minute))
	require.Equal(t, 100*time.Millisecond, d, "old failures are forgotten")
	require.Equal(t, 1, n)
	none := newFailureTracker(-1, 0)
	d, _ = none.fail("10.0.0.1", now)
	require.Zero(t, d)
}
