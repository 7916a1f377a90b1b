package compattest_test

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// pyProducer behaves like MetaQ's Python producer (contrib/python
// metaq/producer.py, MessageProducer): one child watch on the legacy
// topics/<topic> node, re-set on every read; for each "<id>-m" child it
// reads ids/<id>/master; _update_conn_dict keeps the connection of a broker
// that is still listed with the same URI, closes the connection of a broker
// no longer listed, and dials a newly listed one. It sends legacy puts (no
// checksum) over the connection it holds and never redials on its own.
// (Python's Conn can also reopen a socket it marked dead after dead_retry,
// 5 s, on some error paths; the model leaves that out, so the test shows
// what the watch alone achieves.)
type pyProducer struct {
	t     *testing.T
	zc    *zk.Conn
	path  string // topics/<topic>
	ids   string // brokers/ids
	topic string
	// react is the watcher's reaction time: Python's zkclient runs the
	// watcher on the ZooKeeper C client's thread, which then takes the
	// producer's lock (held by heartbeats talking to every connection)
	// before re-reading. Modelled so that the test does not depend on
	// winning a sub-millisecond race against the broker's create.
	react time.Duration

	mu    sync.Mutex // guards the fields below
	uris  map[int]string
	conns map[int]*metaqConn
	reads [][]string // children seen by every read, in order
	err   error      // first ZooKeeper error of the watch loop

	stop chan struct{}
	wg   sync.WaitGroup // the watch loop
}

func newPyProducer(t *testing.T, zkAddr, root, topic string, react time.Duration) *pyProducer {
	zc := zktest.Connect(t, []string{zkAddr}, 10*time.Second)
	p := &pyProducer{t: t, zc: zc.Conn, path: root + "/brokers/topics/" + topic, ids: root + "/brokers/ids", topic: topic, react: react,
		uris: map[int]string{}, conns: map[int]*metaqConn{}, stop: make(chan struct{})}
	w, err := p.update()
	require.NoError(t, err)
	p.wg.Add(1)
	go p.watchLoop(w)
	t.Cleanup(p.close)
	return p
}

func (p *pyProducer) close() {
	close(p.stop)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.c.Close()
	}
}

// watchLoop is the watcher: every event re-reads (and re-watches) the list.
func (p *pyProducer) watchLoop(w <-chan zk.Event) {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case <-w:
		}
		select { // the watcher's reaction time (see react)
		case <-p.stop:
			return
		case <-time.After(p.react):
		}
		var err error
		if w, err = p.update(); err != nil {
			p.mu.Lock()
			p.err = errors.Join(p.err, err)
			p.mu.Unlock()
			return
		}
	}
}

// update is _update_broker_infos + _update_conn_dict.
func (p *pyProducer) update() (<-chan zk.Event, error) {
	kids, _, w, err := p.zc.ChildrenW(p.path)
	if err != nil {
		return nil, err
	}
	uris := map[int]string{}
	for _, k := range kids {
		id, ok := strings.CutSuffix(k, "-m")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(id)
		if err != nil {
			return nil, err
		}
		data, _, err := p.zc.Get(p.ids + "/" + id + "/master")
		if err != nil {
			return nil, err
		}
		uris[n] = string(data)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reads = append(p.reads, slices.Sorted(slices.Values(kids)))
	for id, old := range p.uris {
		if uri, ok := uris[id]; !ok || uri != old {
			if c := p.conns[id]; c != nil {
				_ = c.c.Close()
			}
			delete(p.conns, id)
			if ok {
				p.dialLocked(id, uri)
			}
		}
	}
	for id, uri := range uris {
		if _, ok := p.uris[id]; !ok {
			p.dialLocked(id, uri)
		}
	}
	p.uris = uris
	return w, nil
}

func (p *pyProducer) dialLocked(id int, uri string) {
	u, err := url.Parse(uri)
	if err != nil {
		return
	}
	if c, err := tryDialMetaQ(p.t, u.Host); err == nil {
		p.conns[id] = c
	}
}

// send puts one message to partition 0 of broker id over the held connection.
func (p *pyProducer) send(id int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.conns[id]
	if c == nil {
		return fmt.Errorf("no connection to broker %d", id)
	}
	data := []byte("from python")
	r, err := c.tryCall(&protocol.PutRequest{Topic: p.topic, Partition: 0, Data: data, NoChecksum: true, Checksum: -1, OpaqueID: c.nextOpaque()})
	if err != nil {
		return err
	}
	if r.Code != protocol.CodeOK {
		return fmt.Errorf("put: %d %s", r.Code, r.Body)
	}
	return nil
}

// sawAbsent tells whether a read after the first n ones lacked node.
func (p *pyProducer) sawAbsent(n int, node string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, kids := range p.reads[min(n, len(p.reads)):] {
		if !slices.Contains(kids, node) {
			return true
		}
	}
	return false
}

func (p *pyProducer) readCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.reads)
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestRestartWithinSessionTimeoutMakesPythonProducerReconnect mirrors
// MetaQ's Python producer across a broker kill -9 and restart within the
// ZooKeeper session timeout (MetaQ's Ruby producer sets no watch at all and
// is out of reach of any broker-side fix): the restarted broker (same id,
// same address) must make its old registration visibly disappear before
// registering again, so the
// producer's single child watch fires, its re-read finds the broker absent
// (it drops the dead connection), the next one finds it back (it dials) —
// and its sends succeed again. With delete-then-create back to back, a
// watcher that takes longer than that gap to re-read sees the same children
// and URI, and the producer keeps the dead connection for ever. The
// broker's grace (3 s here, 2 s by default) bounds the reaction time it
// tolerates; the test's producer reacts in 300 ms.
func TestRestartWithinSessionTimeoutMakesPythonProducerReconnect(t *testing.T) {
	zks := zktest.Shared(t)
	root := zkRoot(t)
	const id = 5
	spec := childSpec{ID: id, Listen: fmt.Sprintf("127.0.0.1:%d", freePort(t)), DataDir: t.TempDir(), ZK: zks.Addr,
		Root: root, Topic: "py", Parts: 2, GraceMs: 3000, Sessions: 60000}
	first := startChild(t, spec)
	p := newPyProducer(t, zks.Addr, root, "py", 300*time.Millisecond)
	require.NoError(t, p.send(id))

	first.kill9(t) // its session (60 s) outlives the restart
	require.Error(t, p.send(id), "the held connection is dead")
	reads := p.readCount()

	second := startChild(t, spec)
	require.NotEqual(t, first.session, second.session)
	for deadline := time.Now().Add(30 * time.Second); ; {
		err := p.send(id)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sends did not recover within 30s of the restart: %v\nreads: %v", err, p.reads)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	require.True(t, p.sawAbsent(reads, strconv.Itoa(id)+"-m"), "the watch re-read the list while the broker was absent")
	p.mu.Lock()
	require.NoError(t, p.err)
	p.mu.Unlock()

	// A graceful stop of the second one leaves nothing behind.
	require.NoError(t, second.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-second.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("child broker did not stop on SIGTERM\n%s", second.stderr.String())
	}
}
