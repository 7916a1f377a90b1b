package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/internal/netfault"
	"github.com/metaq-go/metaq/protocol"
	"github.com/stretchr/testify/require"
)

// startMember starts a member of replica set brokerId 5 on dir ("" = a
// temp dir) with the given replication options.
func startMember(t *testing.T, dir string, ro broker.ReplicationOptions) *broker.Broker {
	t.Helper()
	if ro.FollowerMaxWait == 0 {
		ro.FollowerMaxWait = 100 * time.Millisecond
	}
	return brokertest.Start(t, brokertest.Options{BrokerID: 5, Partitions: 2, DataDir: dir,
		Modify: func(o *broker.Options) { o.Replication = ro }})
}

// ackedPut is a put the master acknowledged.
type ackedPut struct {
	part   int32
	offset int64
	id     int64
	data   []byte
}

func dialT(t *testing.T, addr string) *conn.Conn {
	t.Helper()
	c, err := conn.Dial(context.Background(), addr, conn.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func put(ctx context.Context, c *conn.Conn, part int32, data []byte) (ackedPut, error) {
	r, err := c.Put(ctx, &protocol.PutRequest{Topic: "rt", Partition: part, Checksum: protocol.Checksum(data), Data: data})
	if err != nil {
		return ackedPut{}, err
	}
	return ackedPut{part: r.Partition, offset: r.Offset, id: r.MsgID, data: data}, nil
}

// requireHas checks that b's store holds a at its offset with its id and data.
func requireHas(t *testing.T, b *broker.Broker, a ackedPut) {
	t.Helper()
	p, err := b.Store().Partition("rt", int(a.part), false)
	require.NoError(t, err, "partition rt-%d missing", a.part)
	sl, err := p.Read(a.offset, store.HeaderSize+len(a.data))
	require.NoError(t, err, "read rt-%d at %d", a.part, a.offset)
	defer sl.Release()
	raw, err := sl.ReadAll(nil)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(raw), store.HeaderSize+len(a.data))
	h := store.ParseHeader(raw)
	require.Equal(t, a.id, h.ID, "message id at rt-%d@%d", a.part, a.offset)
	require.Equal(t, a.data, raw[store.HeaderSize:store.HeaderSize+int(h.Len)])
}

// requireSameLogs checks that every partition of want is byte-identical on got.
func requireSameLogs(t *testing.T, want, got *broker.Broker) {
	t.Helper()
	for _, wp := range want.Store().Partitions() {
		gp, err := got.Store().Partition(wp.Topic(), wp.ID(), false)
		require.NoError(t, err)
		require.Equal(t, wp.End(), gp.End(), "end of %s-%d", wp.Topic(), wp.ID())
		require.Equal(t, readLog(t, wp), readLog(t, gp), "bytes of %s-%d", wp.Topic(), wp.ID())
	}
}

func readLog(t *testing.T, p *store.Partition) []byte {
	var out []byte
	for off := p.Earliest(); off < p.End(); {
		sl, err := p.Read(off, 1<<20)
		require.NoError(t, err)
		b, err := sl.ReadAll(nil)
		sl.Release()
		require.NoError(t, err)
		out = append(out, b...)
		off += int64(len(b))
	}
	return out
}

// slaveLine returns the `slave <member>` line of the master's stats replication.
func slaveLine(t *testing.T, c *conn.Conn, member int) string {
	t.Helper()
	lines, err := c.Stats(context.Background(), "replication")
	require.NoError(t, err)
	for _, l := range lines {
		if l.Key == "slave" && bytes.HasPrefix([]byte(l.Value), []byte(fmt.Sprintf("%d ", member))) {
			return l.Value
		}
	}
	return ""
}

func waitInSync(t *testing.T, c *conn.Conn, member int, want bool) {
	t.Helper()
	needle := fmt.Sprintf("in_sync %t", want)
	require.Eventually(t, func() bool { return bytes.Contains([]byte(slaveLine(t, c, member)), []byte(needle)) },
		30*time.Second, 10*time.Millisecond, "member %d %s", member, needle)
}

// newTCPProxy starts a netfault.Proxy to target for one test.
func newTCPProxy(t *testing.T, target string) *netfault.Proxy {
	p, err := netfault.New(target)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}
