package conn_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// Replies of many requests arriving in one read (several dispatch batches)
// each reach their own handler once, in order; a malformed frame after them
// ends the connection with ErrProtocol only after they were handled, and a
// request still pending gets that error.
func TestManyRepliesInOneReadThenMalformedFrame(t *testing.T) {
	const n = 300 // more than one dispatch batch
	addr := serveConns(t, func(nc net.Conn) {
		r := bufio.NewReader(nc)
		var out strings.Builder
		if !echoResults(r, &out, n) {
			return
		}
		_, _ = r.ReadString('\n') // the last request: never answered
		out.WriteString("bogus frame\r\n")
		_, _ = nc.Write([]byte(out.String()))
		_, _ = r.ReadString('\n') // wait for the client to hang up
	})
	c := dial(t, addr, conn.Options{HeartbeatInterval: -1})
	var mu sync.Mutex
	var order []int
	done := make(chan bool, n)
	for i := 0; i < n; i++ {
		h := &orderEcho{echo: echo{ch: done}, i: i, mu: &mu, order: &order}
		require.NoError(t, c.Start(h, h))
	}
	last := make(chan error, 1)
	require.NoError(t, c.Start(versionLike{}, errHandler(last)))
	for i := 0; i < n; i++ {
		require.True(t, <-done, "reply body must echo the request's own opaque")
	}
	require.ErrorIs(t, <-last, conn.ErrProtocol)
	<-c.Done()
	require.ErrorIs(t, c.Err(), conn.ErrProtocol)
	for i, got := range order {
		require.Equal(t, i, got, "replies handled out of order")
	}
}

type orderEcho struct {
	echo
	i     int
	mu    *sync.Mutex
	order *[]int
}

func (e *orderEcho) HandleReply(rep *protocol.Reply, err error) {
	if err == nil {
		e.mu.Lock()
		*e.order = append(*e.order, e.i)
		e.mu.Unlock()
	}
	e.echo.HandleReply(rep, err)
}

// echoResults reads n request lines from r and appends to out, for each, a
// 200 result whose body is the request's opaque; false when r ends first.
func echoResults(r *bufio.Reader, out *strings.Builder, n int) bool {
	for i := 0; i < n; i++ {
		line, err := r.ReadString('\n')
		if err != nil {
			return false
		}
		op := lastTok(strings.TrimSpace(line))
		fmt.Fprintf(out, "result 200 %d %s\r\n%s", len(op), op, op)
	}
	return true
}

type errHandler chan error

func (h errHandler) HandleReply(_ *protocol.Reply, err error) { h <- err }

// serveConns listens on a loopback port, runs serve on every connection
// (closing it after) and stops with the test; it returns the address.
func serveConns(t *testing.T, serve func(nc net.Conn)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				serve(nc)
			}()
		}
	}()
	return ln.Addr().String()
}

// AfterReplies runs on the reader goroutine after the handlers of each
// batch of replies, and sees what they left in ReaderLocal: every reply is
// counted in exactly one call, no call covers more than one dispatch batch
// (64), and a read of 300 replies takes several calls.
func TestAfterRepliesFollowsEachBatch(t *testing.T) {
	const n = 300
	addr := serveConns(t, func(nc net.Conn) {
		r := bufio.NewReader(nc)
		var out strings.Builder
		if !echoResults(r, &out, n) {
			return
		}
		_, _ = nc.Write([]byte(out.String()))
		_, _ = r.ReadString('\n') // wait for the client to hang up
	})
	batches := make(chan int, n)
	c := dial(t, addr, conn.Options{HeartbeatInterval: -1, AfterReplies: func(c *conn.Conn) {
		k, _ := (*c.ReaderLocal()).(int)
		*c.ReaderLocal() = 0
		batches <- k
	}})
	h := &localCounter{c: c}
	for i := 0; i < n; i++ {
		require.NoError(t, c.Start(versionLike{}, h))
	}
	got := 0
	for got < n {
		k := <-batches
		require.LessOrEqual(t, k, 64)
		got += k
	}
	require.Equal(t, n, got)
}

// localCounter counts replies in its connection's ReaderLocal.
type localCounter struct{ c *conn.Conn }

func (h *localCounter) HandleReply(_ *protocol.Reply, err error) {
	if err == nil {
		k, _ := (*h.c.ReaderLocal()).(int)
		*h.c.ReaderLocal() = k + 1
	}
}
