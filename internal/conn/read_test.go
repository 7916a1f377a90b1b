package conn_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/conn"
)

// A reply and the end of the stream that arrive together (a broker that
// answers, or refuses with opaque 0, and closes at once) are both seen: the
// reply is handled and the request still pending fails with ErrConnLost at
// once, not at the heartbeat timeout. The FIN raises no readiness edge of
// its own when it lands with the data, so a reader that, after a read that
// did not fill its buffer, waited for the next edge instead of reading
// until EAGAIN or EOF (tried for issue 16 to save the extra read per reply)
// would miss it.
func TestReplyAndCloseTogether(t *testing.T) {
	addr := serveConns(t, func(nc net.Conn) {
		buf := make([]byte, 4096)
		got := 0
		for got < len("version 1\r\nversion 2\r\n") { // both requests, then the reply and the close
			n, err := nc.Read(buf[got:])
			if err != nil {
				return
			}
			got += n
		}
		_, _ = nc.Write([]byte("result 200 0 1\r\n"))
	})
	c := dial(t, addr, conn.Options{HeartbeatInterval: -1}) // no stall check: only the read can notice
	first, second := make(errHandler, 1), make(errHandler, 1)
	require.NoError(t, c.Start(versionLike{}, first))
	require.NoError(t, c.Start(versionLike{}, second))
	require.NoError(t, <-first)
	select {
	case err := <-second:
		require.ErrorIs(t, err, conn.ErrConnLost)
	case <-time.After(30 * time.Second):
		t.Fatal("the end of the stream that came with the reply was never noticed")
	}
}
