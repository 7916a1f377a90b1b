package broker_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/config"
)

// TestZKAuthFromConfigReachesTheBroker: zk.zkAuth becomes the broker's
// ZooKeeper identity (the end-to-end ACL tests are in tools/metaq,
// zk_security_test.go).
func TestZKAuthFromConfigReachesTheBroker(t *testing.T) {
	cfg, err := config.Parse([]byte("[system]\nbrokerId=1\n[zookeeper]\nzk.zkConnect=127.0.0.1:2181\nzk.zkAuth=cluster:pw:1\n"), "ini", config.WithoutEnv())
	require.NoError(t, err)
	o := broker.OptionsFromConfig(cfg, nil)
	require.Equal(t, "cluster", o.ZK.DigestUser)
	require.Equal(t, "pw:1", o.ZK.DigestPassword)
}
