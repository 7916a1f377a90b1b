package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTransactionLimitKeys(t *testing.T) {
	b := mustParse(t, minimalINI).Broker()
	assert.Equal(t, DefaultMaxTransactionsPerConnection, b.MaxTransactionsPerConnection)
	assert.Equal(t, DefaultMaxTransactions, b.MaxTransactions)
	assert.Equal(t, time.Duration(0), b.XAHeuristicTimeout, "prepared XA transactions never expire by default")

	b = mustParse(t, "[system]\nbrokerId=1\nmaxTransactionsPerConnection=50\nMAXTRANSACTIONS=2000\n"+
		"xaHeuristicTimeoutSeconds=24*3600\n[zookeeper]\nzk.zkConnect=127.0.0.1:2181\n").Broker()
	assert.Equal(t, 50, b.MaxTransactionsPerConnection)
	assert.Equal(t, 2000, b.MaxTransactions)
	assert.Equal(t, 24*time.Hour, b.XAHeuristicTimeout)

	for _, bad := range []string{"maxTransactionsPerConnection=0", "maxTransactions=-1", "xaHeuristicTimeoutSeconds=-5"} {
		_, err := Parse([]byte("[system]\nbrokerId=1\n"+bad+"\n[zookeeper]\nzk.zkConnect=127.0.0.1:2181\n"), "ini", WithoutEnv())
		require.ErrorIs(t, err, ErrBadValue, bad)
	}
}
