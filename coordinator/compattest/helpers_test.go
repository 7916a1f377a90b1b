package compattest

import (
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// env is a ZooKeeper root of its own on the shared test ZooKeeper.
type env struct {
	t     *testing.T
	zk    string
	root  string
	paths coordinator.Paths
}

var rootSeq struct {
	sync.Mutex
	n int
}

func newEnv(t *testing.T) *env {
	rootSeq.Lock()
	rootSeq.n++
	n := rootSeq.n
	rootSeq.Unlock()
	root := fmt.Sprintf("/compat%s-%d/meta", time.Now().Format("150405.000000"), n)
	return &env{t: t, zk: zktest.Shared(t).Addr, root: root, paths: coordinator.NewPaths(root)}
}

// startBroker starts a real broker registered under the env's root.
func (e *env) startBroker(id, parts int, modify func(*broker.Options)) *broker.Broker {
	return brokertest.Start(e.t, brokertest.Options{BrokerID: id, Partitions: parts, ZK: e.zk, ZKRoot: e.root, Modify: modify})
}

// rawZK opens a plain go-zookeeper connection, as a MetaQ client's ZkClient.
func (e *env) rawZK() *zk.Conn {
	c, ev, err := zk.Connect([]string{e.zk}, 10*time.Second, zk.WithLogInfo(false))
	require.NoError(e.t, err)
	deadline := time.After(20 * time.Second)
	for connected := false; !connected; {
		select {
		case x := <-ev:
			connected = x.State == zk.StateHasSession
		case <-deadline:
			e.t.Fatal("no ZooKeeper session within 20s")
		}
	}
	go func() { // drain the session events; ends when the connection closes
		for range ev {
		}
	}()
	e.t.Cleanup(c.Close)
	return c
}

// ensurePersistent is MetaQ's ZkUtils.makeSurePersistentPathExists.
func ensurePersistent(c *zk.Conn, p string) error {
	if p == "/" {
		return nil
	}
	if ok, _, err := c.Exists(p); err != nil || ok {
		return err
	}
	if err := ensurePersistent(c, path.Dir(p)); err != nil {
		return err
	}
	_, err := c.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNodeExists) {
		return nil
	}
	return err
}

// children lists a node's children; none if it does not exist.
func children(t *testing.T, c *zk.Conn, p string) []string {
	kids, _, err := c.Children(p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	require.NoError(t, err)
	return kids
}

// wire is a raw protocol connection: one request, one reply.
type wire struct {
	t    *testing.T
	c    net.Conn
	dec  *protocol.ReplyDecoder
	buf  []byte
	next int32
}

func dialWire(t *testing.T, addr string) *wire {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &wire{t: t, c: c, dec: protocol.NewReplyDecoder(protocol.Config{})}
}

// roundTrip sends one request line (built by a protocol encoder) and returns
// its reply (the body copied).
func (w *wire) roundTrip(req []byte) protocol.Reply {
	w.t.Helper()
	require.NoError(w.t, w.c.SetDeadline(time.Now().Add(30*time.Second)))
	_, err := w.c.Write(req)
	require.NoError(w.t, err)
	tmp := make([]byte, 64<<10)
	for {
		if len(w.buf) > 0 {
			rep, n, err := w.dec.Decode(w.buf)
			require.NoError(w.t, err)
			if n > 0 {
				out := *rep
				out.Body = append([]byte(nil), rep.Body...)
				w.buf = append(w.buf[:0], w.buf[n:]...)
				return out
			}
		}
		k, err := w.c.Read(tmp)
		require.NoError(w.t, err, "reading a reply")
		w.buf = append(w.buf, tmp[:k]...)
	}
}

func (w *wire) opaque() int32 { w.next++; return w.next }

// put sends one message as MetaQ's SimpleMessageProducer does and returns
// the stored message's id and offset.
func (w *wire) put(topic string, part int32, payload string) (msgID, offset int64) {
	w.t.Helper()
	data := []byte(payload)
	rep := w.roundTrip(protocol.AppendPut(nil, &protocol.PutRequest{Topic: topic, Partition: part,
		Checksum: protocol.Checksum(data), Data: data, OpaqueID: w.opaque()}))
	require.EqualValues(w.t, protocol.CodeOK, rep.Code, "put %s-%d: %s", topic, part, rep.Body)
	id, _, off, err := protocol.ParsePutResult(rep.Body)
	require.NoError(w.t, err)
	return id, off
}

// get sends a get as MetaQ's consumer fetch does.
func (w *wire) get(topic, group string, part int32, offset int64, maxSize int32) protocol.Reply {
	w.t.Helper()
	return w.roundTrip(protocol.AppendGet(nil, &protocol.GetRequest{Topic: topic, Group: group, Partition: part,
		Offset: offset, MaxSize: maxSize, OpaqueID: w.opaque()}))
}

// fetched is one message of a get reply.
type fetched struct {
	id      int64
	offset  int64
	payload string
}

// messages decodes a get reply's message set that starts at offset.
func messages(t *testing.T, rep protocol.Reply, offset int64) []fetched {
	t.Helper()
	require.Equal(t, protocol.VerbValue, rep.Verb, "get answered %d %s", rep.Code, rep.Body)
	var out []fetched
	it := protocol.NewMessageIterator(rep.Body)
	for it.Next() {
		m := it.Message()
		out = append(out, fetched{id: m.ID, offset: offset, payload: string(m.Data)})
		offset += int64(m.Size())
	}
	require.NoError(t, it.Err())
	return out
}

// parseMetaQOffset reads an offset node as MetaQ's ZkOffsetStorage.load does:
// "<msgId>-<offset>" split at the last '-', or a bare offset (pre-1.4).
func parseMetaQOffset(t *testing.T, s string) (msgID, offset int64) {
	t.Helper()
	i := strings.LastIndex(s, "-")
	var err error
	if i > 0 {
		msgID, err = strconv.ParseInt(s[:i], 10, 64)
		require.NoError(t, err, "msgId of %q", s)
		s = s[i+1:]
	} else {
		msgID = -1
	}
	offset, err = strconv.ParseInt(s, 10, 64)
	require.NoError(t, err, "offset of %q", s)
	return msgID, offset
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, timeout, 10*time.Millisecond, "timed out waiting for %s", what)
}
