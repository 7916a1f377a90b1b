package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// The read-only commands that used to need a broker address (stats,
// tx list) work with just --zk: every registered broker is asked and shown
// on rows of its own.
func TestReadOnlyCommandsWithJustZK(t *testing.T) {
	zks := zktest.Shared(t)
	root := opsZKRoot(t)
	b1 := opsStartBroker(t, 1, zks.Addr, root, 2, "alpha")
	b2 := opsStartBroker(t, 2, zks.Addr, root, 1, "beta")
	opsPut(t, b2.Addr(), "beta", 0, 3, "m")
	zk := []string{"--zk", zks.Addr, "--zk-root", root}

	var rows []struct {
		BrokerID int            `json:"broker_id"`
		Addr     string         `json:"addr"`
		Stats    map[string]any `json:"stats"`
		Error    string         `json:"error"`
	}
	mustMetaqJSON(t, &rows, append([]string{"stats"}, zk...)...)
	require.Len(t, rows, 2)
	for i, b := range []struct {
		id   int
		addr string
	}{{1, b1.Addr()}, {2, b2.Addr()}} {
		require.Equal(t, b.id, rows[i].BrokerID)
		require.Equal(t, b.addr, rows[i].Addr)
		require.Empty(t, rows[i].Error)
		require.EqualValues(t, b.id, rows[i].Stats["broker_id"])
	}

	out := mustMetaq(t, append([]string{"stats", "topics"}, zk...)...)
	require.Regexp(t, `(?m)^1\s+`+b1.Addr()+`\s+alpha\s`, out)
	require.Regexp(t, `(?m)^2\s+`+b2.Addr()+`\s+beta\s`, out)
	out = mustMetaq(t, append([]string{"stats", "config"}, zk...)...)
	require.Contains(t, out, fmt.Sprintf("# broker 1 (%s)", b1.Addr()))
	require.Contains(t, out, "brokerId=2")
	// A broker address still selects one broker, --zk or not.
	out = mustMetaq(t, append([]string{"stats", b2.Addr(), "topics"}, zk...)...)
	require.Contains(t, out, "beta")
	require.NotContains(t, out, "alpha")

	// tx list: RECOVER on every broker, each row naming its broker.
	c := brokertest.Dial(t, b2.Addr())
	x := "XID:1:0a:01:cli"
	for i, line := range []string{
		"transaction " + x + " s BEGIN cli 1\r\n",
		fmt.Sprintf("put beta 0 2 0 -1 %s 2\r\nxa", x),
		"transaction " + x + " s PREPARE cli 3\r\n",
	} {
		c.Send(t, line)
		l, body := c.ReadReply(t)
		require.True(t, strings.HasPrefix(l, "result 200 "), "%d: %s %s", i, l, body)
	}
	var txs []struct {
		BrokerID *int   `json:"broker_id"`
		Addr     string `json:"addr"`
		Key      string `json:"key"`
	}
	mustMetaqJSON(t, &txs, append([]string{"tx", "list"}, zk...)...)
	require.Len(t, txs, 1)
	require.Equal(t, x, txs[0].Key)
	require.NotNil(t, txs[0].BrokerID)
	require.Equal(t, 2, *txs[0].BrokerID)
	require.Equal(t, b2.Addr(), txs[0].Addr)
	out = mustMetaq(t, append([]string{"tx", "list"}, zk...)...)
	require.Regexp(t, `(?m)^2\s+`+b2.Addr()+`\s+`+x, out)

	// Nothing registered under the root: a clear error.
	r := runMetaq(t, "stats", "--zk", zks.Addr, "--zk-root", root+"-empty")
	require.Error(t, r.err)
	require.Contains(t, r.err.Error(), "no broker is registered")
}
