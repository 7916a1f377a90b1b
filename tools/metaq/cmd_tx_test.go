package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/producer"
)

func TestTxListCommitRollbackInDoubt(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := producer.New(ctx, producer.WithBroker(b.Addr(), 1))
	require.NoError(t, err)
	defer p.Close(context.Background())
	xa, err := p.XAResource(ctx, producer.XAOptions{Broker: b.Addr(), Name: "cli"})
	require.NoError(t, err)
	var keys []string
	for _, g := range []string{"g1", "g2"} {
		x := producer.XID{FormatID: 1, GlobalID: []byte(g)}
		require.NoError(t, xa.Start(ctx, x))
		_, err := xa.Send(ctx, x, producer.Message{Topic: "t", Payload: []byte(g)})
		require.NoError(t, err)
		_, err = xa.Prepare(ctx, x)
		require.NoError(t, err)
		keys = append(keys, xa.Key(x))
	}
	out := mustMetaq(t, "tx", "list", "--broker", b.Addr())
	require.Contains(t, out, keys[0])
	require.Contains(t, out, keys[1])
	var rows []struct {
		Key   string `json:"key"`
		GTRID string `json:"gtrid"`
	}
	mustMetaqJSON(t, &rows, "tx", "list", "--broker", b.Addr())
	require.Len(t, rows, 2)
	require.Equal(t, "6731", rows[0].GTRID)

	mustMetaq(t, "tx", "commit", "--broker", b.Addr(), keys[0])
	mustMetaq(t, "tx", "rollback", "--broker", "meta://"+b.Addr(), keys[1])
	out = mustMetaq(t, "tx", "list", "--broker", b.Addr())
	require.NotContains(t, out, "XID:")
	require.NoError(t, xa.Commit(ctx, producer.XID{FormatID: 1, GlobalID: []byte("g1")}, false), "the TM's replay succeeds")

	r := runMetaq(t, "tx", "commit", "--broker", b.Addr(), "XID:1:ff:00:cli")
	require.Error(t, r.err)
	require.True(t, strings.Contains(r.err.Error(), "XAER_NOTA"), r.err.Error())
	r = runMetaq(t, "tx", "commit", "--broker", b.Addr(), "TX:s:1")
	require.NotEqual(t, exitOK, r.code)
	r = runMetaq(t, "tx", "list")
	require.NotEqual(t, exitOK, r.code)
}
