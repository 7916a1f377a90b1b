package conn_test

import (
	"net"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// A request and its reply on an idle connection (an inline write, one read)
// allocate nothing in steady state: at low rates every message is such a
// round trip, and a closure per socket call made it 2-3 allocations.
func TestRoundTripDoesNotAllocate(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("raw socket I/O is Linux only")
	}
	addr := serveConns(t, func(nc net.Conn) {
		buf := make([]byte, 4096)
		out := make([]byte, 0, 64)
		for {
			n, err := nc.Read(buf)
			if err != nil {
				return
			}
			// One version request per read (the client waits for each reply);
			// answer with its opaque, which the fake reply line carries.
			line := buf[:n]
			op := line[len("version "):]
			op = op[:len(op)-2]
			out = append(append(append(out[:0], "result 200 0 "...), op...), "\r\n"...)
			if _, err := nc.Write(out); err != nil {
				return
			}
		}
	})
	c := dial(t, addr, conn.Options{HeartbeatInterval: -1})
	h := make(doneHandler, 1)
	roundTrip := func() {
		require.NoError(t, c.Start(versionLike{}, h))
		<-h
	}
	for i := 0; i < 100; i++ { // warm up buffers
		roundTrip()
	}
	allocs := testing.AllocsPerRun(500, roundTrip)
	require.Less(t, allocs, 0.5, "allocations per request and reply")
}

type doneHandler chan struct{}

func (h doneHandler) HandleReply(*protocol.Reply, error) { h <- struct{}{} }
