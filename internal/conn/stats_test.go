package conn_test

import (
	"bufio"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// statsMap indexes stats lines by key.
func statsMap(lines []protocol.StatsLine) map[string]string {
	m := map[string]string{}
	for _, l := range lines {
		m[l.Key] = l.Value
	}
	return m
}

func TestStatsItemsAgainstBroker(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{BrokerID: 3, Partitions: 1})
	c := dial(t, b.Addr(), conn.Options{HeartbeatInterval: -1})
	ctx := ctxT(t)
	_, err := c.Put(ctx, putReq("st", 0, "hello"))
	require.NoError(t, err)

	general, err := c.Stats(ctx, "")
	require.NoError(t, err)
	m := statsMap(general)
	require.Equal(t, "3", m["broker_id"])
	require.NotEmpty(t, m["version"])
	require.Equal(t, "1", m["cmd_put"])

	offsets, err := c.Stats(ctx, "offsets")
	require.NoError(t, err)
	require.Equal(t, []protocol.StatsLine{{Key: "st", Value: "part 0 min_offset 0 max_offset 25"}}, offsets)

	topic, err := c.Stats(ctx, "st")
	require.NoError(t, err)
	require.Equal(t, "1", statsMap(topic)["cmd_put"])

	// config is the raw file, not STATS/END lines.
	raw, err := c.StatsBody(ctx, "config")
	require.NoError(t, err)
	require.Equal(t, "[system]\nbrokerId=3\n", string(raw))
	_, err = c.Stats(ctx, "config")
	require.ErrorIs(t, err, conn.ErrProtocol)
}

func TestStatsRefusedOrMalformedReplies(t *testing.T) {
	addr := fakeBroker(t, func(lines []string, w *bufio.Writer) {
		for _, l := range lines {
			op := lastTok(l)
			switch {
			case l == "stats refused "+op:
				fmt.Fprintf(w, "result 403 6 %s\r\nno ACL", op)
			case l == "stats torn "+op:
				const torn = "STATS\r\na 1" // no END
				fmt.Fprintf(w, "result 200 %d %s\r\n%s", len(torn), op, torn)
			default:
				body := "STATS\r\nitem " + l + "\r\nEND\r\n"
				fmt.Fprintf(w, "result 200 %d %s\r\n%s", len(body), op, body)
			}
		}
	})
	c := dial(t, addr, conn.Options{HeartbeatInterval: -1})
	ctx := ctxT(t)

	_, err := c.Stats(ctx, "refused")
	require.ErrorIs(t, err, conn.ErrForbidden)
	var se *conn.ServerError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "no ACL", se.Msg)

	_, err = c.Stats(ctx, "torn")
	require.ErrorIs(t, err, conn.ErrProtocol)
	require.ErrorContains(t, err, `stats "torn"`)

	// The empty item goes out as two spaces, as the Java client sends it.
	lines, err := c.Stats(ctx, "")
	require.NoError(t, err)
	require.Len(t, lines, 1)
	require.Regexp(t, `^stats  -?\d+$`, lines[0].Value)
}
