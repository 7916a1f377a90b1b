package compattest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/config"
	"github.com/metaq-go/metaq/protocol"
)

// startFromINI starts a broker from a MetaQ server.ini, listening on
// 127.0.0.1 (any port), and returns it with a stop function.
func startFromINI(t *testing.T, ini string) (*broker.Broker, func()) {
	t.Helper()
	cfg, err := config.Parse([]byte(ini), "ini", config.WithoutEnv())
	require.NoError(t, err)
	o := broker.OptionsFromConfig(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	o.ListenAddr = "127.0.0.1:0"
	b, err := broker.New(o)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, b.Start(ctx))
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, b.Shutdown(ctx))
		}
	}
	t.Cleanup(stop)
	return b, stop
}

// TestPerTopicDataPath mirrors MetaQ's MessageStore / MessageStoreManager
// with a server.ini that gives a topic its own dataPath ([topic=...]
// dataPath=): the topic's partitions live in <that dataPath>/<topic>-<n>,
// the other topics' under [system] dataPath, and after a restart the
// broker finds the topic's messages there again (MessageStoreManager scans
// every dataPath at start), so a Java consumer reads them on.
func TestPerTopicDataPath(t *testing.T) {
	main, away := t.TempDir(), t.TempDir()
	ini := fmt.Sprintf(`[system]
brokerId=1
hostName=127.0.0.1
serverPort=0
numPartitions=2
dataPath=%s

[zookeeper]
zk.zkEnable=false

[topic=home]

[topic=away]
dataPath=%s
`, main, away)
	b, stop := startFromINI(t, ini)
	c := dialMetaQ(t, b.Addr())
	for _, topic := range []string{"home", "away"} {
		requireCode(t, protocol.CodeOK, c.put(topic, 1, []byte(topic+" before restart")))
	}
	require.DirExists(t, filepath.Join(away, "away-1"))
	require.NoDirExists(t, filepath.Join(main, "away-1"))
	require.DirExists(t, filepath.Join(main, "home-1"))
	stop()

	b, _ = startFromINI(t, ini)
	c = dialMetaQ(t, b.Addr())
	requireCode(t, protocol.CodeOK, c.put("away", 1, []byte("away after restart")))
	require.Equal(t, []string{"away before restart", "away after restart"}, c.payloads("away", 1))
	require.Equal(t, []string{"home before restart"}, c.payloads("home", 1))
	require.NoDirExists(t, filepath.Join(main, "away-1"))
}
