package compattest_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/protocol"
)

// zkRoot returns a ZooKeeper root of its own for a test.
func zkRoot(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return fmt.Sprintf("/compattest/%s-%d", name, time.Now().UnixNano())
}

// metaqConn is one raw MetaQ connection, as every MetaQ client keeps per
// broker: requests are written with the protocol package's encoders and
// replies read with its reply decoder, one at a time.
type metaqConn struct {
	t      testing.TB
	c      net.Conn
	r      *bufio.Reader
	buf    []byte
	dec    *protocol.ReplyDecoder
	opaque int32
}

func dialMetaQ(t testing.TB, addr string) *metaqConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &metaqConn{t: t, c: c, r: bufio.NewReaderSize(c, 64<<10), dec: protocol.NewReplyDecoder(protocol.Config{})}
}

// nextOpaque returns a fresh request id.
func (m *metaqConn) nextOpaque() int32 { m.opaque++; return m.opaque }

// send writes one request.
func (m *metaqConn) send(req protocol.Request) {
	m.t.Helper()
	require.NoError(m.t, m.c.SetWriteDeadline(time.Now().Add(30*time.Second)))
	_, err := m.c.Write(req.AppendTo(nil))
	require.NoError(m.t, err)
}

// read reads the next reply (its body copied), or returns the read error.
func (m *metaqConn) read(timeout time.Duration) (protocol.Reply, error) {
	if err := m.c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return protocol.Reply{}, err
	}
	for {
		r, n, err := m.dec.Decode(m.buf)
		if err != nil {
			return protocol.Reply{}, err
		}
		if n > 0 {
			out := *r
			out.Body = slices.Clone(r.Body)
			m.buf = m.buf[n:]
			return out, nil
		}
		chunk := make([]byte, 64<<10)
		k, err := m.r.Read(chunk)
		m.buf = append(m.buf, chunk[:k]...)
		if err != nil && k == 0 {
			if err == io.EOF {
				return protocol.Reply{}, io.EOF
			}
			return protocol.Reply{}, err
		}
	}
}

// call sends a request and reads its reply, which must carry its opaque.
func (m *metaqConn) call(req protocol.Request) protocol.Reply {
	m.t.Helper()
	m.send(req)
	r, err := m.read(30 * time.Second)
	require.NoError(m.t, err, "reply to %q", req.AppendTo(nil))
	require.Equal(m.t, req.Opaque(), r.Opaque, "reply to %q: %d %q", req.AppendTo(nil), r.Code, r.Body)
	return r
}

// put sends a put in the checksum form of MetaQ's Java client.
func (m *metaqConn) put(topic string, part int32, data []byte) protocol.Reply {
	m.t.Helper()
	return m.call(&protocol.PutRequest{Topic: topic, Partition: part, Data: data,
		Checksum: protocol.Checksum(data), OpaqueID: m.nextOpaque()})
}

// legacyPut sends a put without checksum, as MetaQ's Python and Ruby clients do.
func (m *metaqConn) legacyPut(topic string, part int32, data []byte) protocol.Reply {
	m.t.Helper()
	return m.call(&protocol.PutRequest{Topic: topic, Partition: part, Data: data, NoChecksum: true,
		Checksum: -1, OpaqueID: m.nextOpaque()})
}

// get sends a plain get (no long-poll token: MetaQ clients never send one).
func (m *metaqConn) get(topic, group string, part int32, offset int64, maxSize int32) protocol.Reply {
	m.t.Helper()
	return m.call(&protocol.GetRequest{Topic: topic, Group: group, Partition: part, Offset: offset,
		MaxSize: maxSize, OpaqueID: m.nextOpaque()})
}

// tx sends a transaction request.
func (m *metaqConn) tx(key string, typ protocol.TxType, timeout int32, uq string) protocol.Reply {
	m.t.Helper()
	return m.call(&protocol.TransactionRequest{TxKey: key, SessionID: "sess", Type: typ, Timeout: timeout,
		UniqueQualifier: uq, OpaqueID: m.nextOpaque()})
}

// requireCode checks a reply's code, showing its body on failure.
func requireCode[C ~int | ~int32](t testing.TB, code C, r protocol.Reply) {
	t.Helper()
	require.Equal(t, int32(code), r.Code, "reply body %q", r.Body)
}

// requireXA checks a 500 reply carrying an XAException with code.
func requireXA(t testing.TB, code int32, r protocol.Reply) {
	t.Helper()
	require.Equal(t, int32(protocol.CodeInternal), r.Code, "reply body %q", r.Body)
	xe, err := protocol.ParseXAError(string(r.Body))
	require.NoError(t, err, "body %q", r.Body)
	require.Equal(t, code, xe.Code, "body %q", r.Body)
}

// statsValue returns one line of the general `stats` reply.
func (m *metaqConn) statsValue(key string) string {
	m.t.Helper()
	r := m.call(&protocol.StatsRequest{OpaqueID: m.nextOpaque()})
	requireCode(m.t, protocol.CodeOK, r)
	for _, line := range strings.Split(string(r.Body), "\r\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			return v
		}
	}
	m.t.Fatalf("stats has no %q line: %q", key, r.Body)
	return ""
}

// payloads reads a partition from offset 0 to its end and returns the put data.
func (m *metaqConn) payloads(topic string, part int32) []string {
	m.t.Helper()
	var out []string
	var off int64
	for {
		r := m.get(topic, "reader", part, off, 1<<20)
		if r.Verb != protocol.VerbValue {
			requireCode(m.t, protocol.CodeNotFound, r)
			return out
		}
		it := protocol.NewMessageIterator(r.Body)
		for it.Next() {
			out = append(out, string(it.Message().Data))
		}
		require.NoError(m.t, it.Err())
		off += int64(it.Consumed())
	}
}

// tryDialMetaQ connects without failing the test (for clients that run off
// the test goroutine).
func tryDialMetaQ(t testing.TB, addr string) (*metaqConn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &metaqConn{t: t, c: c, r: bufio.NewReaderSize(c, 64<<10), dec: protocol.NewReplyDecoder(protocol.Config{})}, nil
}

// tryCall sends a request and reads its reply, returning any error instead
// of failing the test.
func (m *metaqConn) tryCall(req protocol.Request) (protocol.Reply, error) {
	if err := m.c.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return protocol.Reply{}, err
	}
	if _, err := m.c.Write(req.AppendTo(nil)); err != nil {
		return protocol.Reply{}, err
	}
	r, err := m.read(10 * time.Second)
	if err == nil && r.Opaque != req.Opaque() {
		err = fmt.Errorf("reply opaque %d, want %d", r.Opaque, req.Opaque())
	}
	return r, err
}
