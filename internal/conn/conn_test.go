package conn_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, addr string, o conn.Options) *conn.Conn {
	t.Helper()
	c, err := conn.Dial(ctxT(t), addr, o)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func putReq(topic string, part int32, payload string) *protocol.PutRequest {
	d := []byte(payload)
	return &protocol.PutRequest{Topic: topic, Partition: part, Checksum: protocol.Checksum(d), Data: d}
}

type countHandler struct {
	mu   sync.Mutex
	got  map[string]int
	errs int
	wg   *sync.WaitGroup
}

func (h *countHandler) HandleReply(rep *protocol.Reply, err error) {
	h.mu.Lock()
	if err != nil {
		h.errs++
	} else {
		h.got[fmt.Sprint(rep.Code)]++
	}
	h.mu.Unlock()
	h.wg.Done()
}

func TestPipelinedPutsGetAndOffsetAgainstBroker(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 2})
	c := dial(t, b.Addr(), conn.Options{Linger: 50 * time.Microsecond})
	ctx := ctxT(t)

	v, err := c.Version(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, v)

	const n = 2000
	var wg sync.WaitGroup
	wg.Add(n)
	h := &countHandler{got: map[string]int{}, wg: &wg}
	for i := 0; i < n; i++ {
		require.NoError(t, c.Start(conn.ProtocolRequest(putReq("pipe", int32(i%2), fmt.Sprintf("m%05d", i))), h))
	}
	wg.Wait()
	require.Equal(t, map[string]int{"200": n}, h.got)
	require.Zero(t, c.Pending())

	// Read partition 0 back with raw gets: n/2 messages in order.
	var payloads []string
	off := int64(0)
	for {
		rep, err := c.Get(ctx, &protocol.GetRequest{Topic: "pipe", Group: "g", Partition: 0, Offset: off, MaxSize: 4096})
		require.NoError(t, err)
		if rep.Verb == protocol.VerbResult {
			require.EqualValues(t, protocol.CodeNotFound, rep.Code)
			break
		}
		it := protocol.NewMessageIterator(rep.Body)
		for it.Next() {
			payloads = append(payloads, string(it.Message().Data))
		}
		require.NoError(t, it.Err())
		off += int64(it.Consumed())
	}
	require.Len(t, payloads, n/2)
	for i, p := range payloads {
		require.Equal(t, fmt.Sprintf("m%05d", 2*i), p)
	}
	got, err := c.Offset(ctx, &protocol.OffsetRequest{Topic: "pipe", Group: "g", Partition: 0, Offset: 1 << 40})
	require.NoError(t, err)
	require.Equal(t, off, got)
}

func TestServerErrorsAreTypedAndRetriableByCode(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	c := dial(t, b.Addr(), conn.Options{})
	bad := putReq("t1", 0, "x")
	bad.Checksum = 12345
	_, err := c.Put(ctxT(t), bad)
	var se *conn.ServerError
	require.ErrorAs(t, err, &se)
	require.EqualValues(t, 500, se.Code)
	require.ErrorIs(t, err, conn.ErrInternal)
	require.NotErrorIs(t, err, conn.ErrUnavailable)
	require.False(t, conn.IsRetriable(err))
	require.True(t, conn.IsRetriable(&conn.ServerError{Code: 503, Msg: "busy"}))
	require.True(t, conn.IsRetriable(fmt.Errorf("x: %w", &conn.ServerError{Code: 504})))

	// The connection is still usable after a refusal.
	res, err := c.Put(ctxT(t), putReq("t1", 0, "ok"))
	require.NoError(t, err)
	require.EqualValues(t, 0, res.Partition)
}

// fakeBroker answers each request line with a 200 result echoing the opaque,
// in reverse order of every pair, to show out-of-order correlation.
func fakeBroker(t *testing.T, handle func(lines []string, w *bufio.Writer)) string {
	return serveConns(t, func(nc net.Conn) {
		r := bufio.NewReader(nc)
		w := bufio.NewWriter(nc)
		var batch []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			batch = append(batch, strings.TrimSpace(line))
			if r.Buffered() == 0 || len(batch) == 2 {
				handle(batch, w)
				if w.Flush() != nil {
					return
				}
				batch = nil
			}
		}
	})
}

func lastTok(line string) string { f := strings.Fields(line); return f[len(f)-1] }

func TestRepliesOutOfOrderAreCorrelatedByOpaque(t *testing.T) {
	addr := fakeBroker(t, func(lines []string, w *bufio.Writer) {
		for i := len(lines) - 1; i >= 0; i-- {
			op := lastTok(lines[i])
			fmt.Fprintf(w, "result 200 %d %s\r\n%s", len(op), op, op)
		}
	})
	c := dial(t, addr, conn.Options{HeartbeatInterval: -1})
	const n = 500
	ch := make(chan bool, n)
	for i := 0; i < n; i++ {
		e := &echo{ch: ch}
		require.NoError(t, c.Start(e, e))
	}
	for i := 0; i < n; i++ {
		require.True(t, <-ch, "reply body must echo the request's own opaque")
	}
}

// echo sends `version <opaque>` and checks that its reply carries its opaque
// as body (the fake broker echoes it).
type echo struct {
	op int32
	ch chan bool
}

func (e *echo) AppendRequest(dst []byte, op int32) []byte {
	e.op = op
	return protocol.AppendVersion(dst, op)
}

func (e *echo) HandleReply(rep *protocol.Reply, err error) {
	e.ch <- err == nil && string(rep.Body) == strconv.Itoa(int(e.op))
}

type versionLike struct{}

func (versionLike) AppendRequest(dst []byte, op int32) []byte { return protocol.AppendVersion(dst, op) }

func TestOpaqueWrapsAroundSkippingNoOpaqueAndBusyIDs(t *testing.T) {
	var seen sync.Map
	addr := fakeBroker(t, func(lines []string, w *bufio.Writer) {
		for _, l := range lines {
			op := lastTok(l)
			seen.Store(op, true)
			fmt.Fprintf(w, "result 200 0 %s\r\n", op)
		}
	})
	c := dial(t, addr, conn.Options{HeartbeatInterval: -1})
	conn.SetNextOpaque(c, math.MaxInt32-2)
	for i := 0; i < 4; i++ {
		_, err := c.Do(ctxT(t), versionLike{})
		require.NoError(t, err)
	}
	for _, op := range []string{"2147483645", "2147483646", "-2147483648", "-2147483647"} {
		_, ok := seen.Load(op)
		require.True(t, ok, op)
	}
	_, ok := seen.Load("2147483647")
	require.False(t, ok, "NoOpaque must never be used")
}

func TestConnectionLossFailsEveryPendingRequestOnce(t *testing.T) {
	var nconn atomic.Int32
	addr := fakeBroker(t, func(lines []string, w *bufio.Writer) {
		// Never answer; close after the first batch.
		nconn.Add(1)
		panicClose(w)
	})
	c := dial(t, addr, conn.Options{HeartbeatInterval: -1})
	const n = 50
	var wg sync.WaitGroup
	wg.Add(n)
	h := &countHandler{got: map[string]int{}, wg: &wg}
	for i := 0; i < n; i++ {
		if err := c.Start(versionLike{}, h); err != nil {
			require.ErrorIs(t, err, conn.ErrConnLost)
			wg.Done()
			h.mu.Lock()
			h.errs++
			h.mu.Unlock()
		}
	}
	wg.Wait()
	require.Equal(t, n, h.errs)
	<-c.Done()
	require.ErrorIs(t, c.Err(), conn.ErrConnLost)
	require.True(t, conn.IsRetriable(c.Err()))
	err := c.Start(versionLike{}, h)
	require.ErrorIs(t, err, conn.ErrConnLost)
}

// panicClose makes the fake broker's writer fail, which closes the connection.
func panicClose(w *bufio.Writer) {
	w.Reset(errWriter{})
	_, _ = w.WriteString("x")
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("closed") }

func TestHeartbeatDetectsSilentBroker(t *testing.T) {
	addr := fakeBroker(t, func(lines []string, w *bufio.Writer) {}) // reads, never answers
	c := dial(t, addr, conn.Options{HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: 100 * time.Millisecond})
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("connection to a silent broker was not declared lost")
	}
	require.ErrorIs(t, c.Err(), conn.ErrConnLost)
}

func TestDoHonoursContextAndCloseFailsPending(t *testing.T) {
	addr := fakeBroker(t, func(lines []string, w *bufio.Writer) {})
	c := dial(t, addr, conn.Options{HeartbeatInterval: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Do(ctx, versionLike{})
	require.ErrorIs(t, err, context.DeadlineExceeded)

	var wg sync.WaitGroup
	wg.Add(1)
	h := &countHandler{got: map[string]int{}, wg: &wg}
	require.NoError(t, c.Start(versionLike{}, h))
	before := runtime.NumGoroutine()
	require.NoError(t, c.Close())
	wg.Wait()
	require.Equal(t, 1, h.errs)
	require.ErrorIs(t, c.Err(), conn.ErrClosed)
	require.Less(t, runtime.NumGoroutine(), before, "reader and writer goroutines end at Close")
}

func TestDialFailureIsRetriable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	_, err = conn.Dial(ctxT(t), addr, conn.Options{})
	require.ErrorIs(t, err, conn.ErrDial)
	require.True(t, conn.IsRetriable(err))
}

func TestRequestsWithoutOpaqueAreRefused(t *testing.T) {
	addr := fakeBroker(t, func(lines []string, w *bufio.Writer) {})
	c := dial(t, addr, conn.Options{HeartbeatInterval: -1})
	err := c.Start(conn.ProtocolRequest(&protocol.QuitRequest{}), nil)
	require.ErrorContains(t, err, "cannot be sent with an opaque")
	require.Zero(t, c.Pending())
}
