package broker_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/config"
	"github.com/metaq-go/metaq/broker/store"
)

// TestRetentionFollowsDeleteWhen: the deleteWhen cron of server.ini, here a
// real every-second one in a topic section, drives the store's retention on
// real files: segments older than deletePolicy are deleted at the next
// activation, while a topic whose deleteWhen has not come keeps them.
func TestRetentionFollowsDeleteWhen(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(`[system]
brokerId=1
dataPath=`+dir+`
maxSegmentSize=300
deletePolicy=delete,1s
retentionCheckIntervalMs=3600000
[zookeeper]
zk.zkEnable=false
[topic=fast]
deleteWhen=* * * * * ?
[topic=slow]
deleteWhen=0 0 0 1 1 ? 2099
`), "ini", config.WithoutEnv())
	require.NoError(t, err)
	opts := broker.OptionsFromConfig(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))

	// Messages are stamped by the store's clock: an hour ago for the first
	// ones, then now; the retention loop reads the same clock.
	var skew atomic.Int64
	skew.Store(int64(time.Hour))
	opts.Store.Now = func() time.Time { return time.Now().Add(-time.Duration(skew.Load())) }
	s, err := store.Open(filepath.Join(dir, "store"), opts.Store)
	require.NoError(t, err)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	parts := map[string]*store.Partition{}
	for _, topic := range []string{"fast", "slow"} {
		p, err := s.Partition(topic, 0, true)
		require.NoError(t, err)
		parts[topic] = p
		for i := 0; i < 20; i++ {
			_, err := p.AppendSync(ctx, []byte("an old message of forty bytes or so...."), 0)
			require.NoError(t, err)
		}
	}
	skew.Store(0)
	for _, p := range parts {
		_, err := p.AppendSync(ctx, []byte("fresh"), 0)
		require.NoError(t, err)
	}
	// Only the slow topic's segment count is checked here: the fast one's
	// every-second deleteWhen may already have deleted hour-old segments
	// (that is what the test waits for below).
	require.Greater(t, parts["slow"].Stats().Segments, 2)
	require.Eventually(t, func() bool { return parts["fast"].Earliest() > 0 }, 30*time.Second, 10*time.Millisecond,
		"the every-second deleteWhen never deleted the hour-old segments")
	require.Zero(t, parts["slow"].Earliest(), "retention ran before the topic's deleteWhen")
}
