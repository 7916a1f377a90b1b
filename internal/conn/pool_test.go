package conn_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/conn"
)

func TestPoolSharesOneDialAndReplacesDeadConnections(t *testing.T) {
	addr := fakeBroker(t, func(lines []string, w *bufio.Writer) {
		for _, l := range lines {
			fmt.Fprintf(w, "result 200 0 %s\r\n", lastTok(l))
		}
	})
	var dials, failures atomic.Int32
	p := conn.NewPool(conn.Options{HeartbeatInterval: -1}, func(_ string, err error) {
		if err != nil {
			failures.Add(1)
		} else {
			dials.Add(1)
		}
	})
	defer p.Close()
	var wg sync.WaitGroup
	got := make([]*conn.Conn, 20)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.Get(ctxT(t), addr)
			require.NoError(t, err)
			got[i] = c
		}()
	}
	wg.Wait()
	require.EqualValues(t, 1, dials.Load())
	for _, c := range got {
		require.Same(t, got[0], c)
	}
	_, err := got[0].Do(ctxT(t), versionLike{})
	require.NoError(t, err)

	// A connection that ended is replaced by a new dial.
	got[0].Close()
	c, err := p.Get(ctxT(t), addr)
	require.NoError(t, err)
	require.NotSame(t, got[0], c)
	require.EqualValues(t, 2, dials.Load())

	// Dial failures are reported once per attempt and returned to the caller.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	ln.Close()
	_, err = p.Get(ctxT(t), dead)
	require.ErrorIs(t, err, conn.ErrDial)
	require.EqualValues(t, 1, failures.Load())

	// Close ends every connection; Get fails afterwards.
	require.NoError(t, p.Close())
	<-c.Done()
	require.ErrorIs(t, c.Err(), conn.ErrClosed)
	_, err = p.Get(context.Background(), addr)
	require.ErrorIs(t, err, conn.ErrClosed)
}
