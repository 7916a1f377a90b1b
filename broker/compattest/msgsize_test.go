package compattest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/broker/config"
	"github.com/metaq-go/metaq/protocol"
)

// javaMaxReadBuffer is MessageUtils.MAX_READ_BUFFER_SIZE of MetaQ 1.4's Java
// client (-Dnotify.remoting.max_read_buffer_size, default 2097152): a
// message whose put data is longer throws InvalidMessageException on every
// fetch, and FetchRequest.increaseMaxSize stops doubling beyond it.
const javaMaxReadBuffer = 2097152

// javaFetch consumes one message the way MetaQ's Java consumer does
// (SimpleFetchManager + FetchRequest + MessageUtils.decodeMessage): a get
// with the subscription's maxSize (1 MiB by default); when the reply holds no
// whole message, increaseMaxSize doubles maxSize unless it is already above
// MAX_READ_BUFFER_SIZE; a message whose put data is longer than
// MAX_READ_BUFFER_SIZE is an InvalidMessageException. It returns the put data
// of the first message, or fails the test where the Java client would loop.
func javaFetch(t *testing.T, c *metaqConn, topic string, part int32, offset int64) []byte {
	t.Helper()
	maxSize := int32(1 << 20)
	for range 8 {
		r := c.get(topic, "java-group", part, offset, maxSize)
		require.Equal(t, protocol.VerbValue, r.Verb, "get: %d %q", r.Code, r.Body)
		if len(r.Body) >= protocol.MessageHeaderSize {
			n := int(binary.BigEndian.Uint32(r.Body))
			require.LessOrEqual(t, n, javaMaxReadBuffer,
				"InvalidMessageException: Too much long payload length: the Java consumer is stuck at offset %d", offset)
			if protocol.MessageHeaderSize+n <= len(r.Body) {
				return r.Body[protocol.MessageHeaderSize : protocol.MessageHeaderSize+n]
			}
		}
		if maxSize > javaMaxReadBuffer { // FetchRequest.increaseMaxSize gives up: the consumer loops
			t.Fatalf("maxSize %d > MAX_READ_BUFFER_SIZE and still no whole message at offset %d: the Java consumer loops for ever", maxSize, offset)
		}
		maxSize *= 2
	}
	t.Fatalf("no whole message at offset %d", offset)
	return nil
}

// TestMessageSizeDefaultIsWhatMetaQJavaClientCanRead mirrors
// MetaMessageSessionFactory's consumer path (FetchRequest.increaseMaxSize,
// MessageUtils.MAX_READ_BUFFER_SIZE): with the default maxMessageSize every
// message the broker accepts can be consumed by MetaQ's Java client, and a
// larger one is refused at put time instead of wedging its consumers.
func TestMessageSizeDefaultIsWhatMetaQJavaClientCanRead(t *testing.T) {
	cfg, err := config.Parse([]byte("[system]\nbrokerId=1\n[zookeeper]\nzk.zkEnable=false\n"), "ini", config.WithoutEnv())
	require.NoError(t, err)
	require.Equal(t, javaMaxReadBuffer, cfg.Broker().MaxMessageSize, "config default")
	require.Equal(t, javaMaxReadBuffer, protocol.MetaQClientMaxMessageSize)

	b := brokertest.Start(t, brokertest.Options{Partitions: 1}) // Options default, as New fills it
	c := dialMetaQ(t, b.Addr())
	biggest := bytes.Repeat([]byte("m"), javaMaxReadBuffer)
	r := c.put("big", 0, biggest)
	requireCode(t, protocol.CodeOK, r)
	_, _, off, err := protocol.ParsePutResult(r.Body)
	require.NoError(t, err)
	require.Equal(t, biggest, javaFetch(t, c, "big", 0, off))

	// One byte more: refused as soon as the line arrives, without waiting
	// for the body; the body that follows is thrown away and the connection
	// goes on.
	tooBig := append(biggest, 'x')
	raw := (&protocol.PutRequest{Topic: "big", Data: tooBig, Checksum: protocol.Checksum(tooBig), OpaqueID: c.nextOpaque()}).AppendTo(nil)
	line := bytes.Index(raw, []byte("\r\n")) + 2
	_, err = c.c.Write(raw[:line])
	require.NoError(t, err)
	r, err = c.read(30 * time.Second)
	require.NoError(t, err)
	requireCode(t, protocol.CodeInternal, r)
	require.Contains(t, string(r.Body), "2097152")
	_, err = c.c.Write(raw[line:])
	require.NoError(t, err)
	requireCode(t, protocol.CodeOK, c.put("big", 0, []byte("after")))
}

// TestOversizedPutKeepsMetaQPythonProducerConnection mirrors MetaQ's Python
// producer (contrib/python/meta-python/metaq/producer.py, MessageProducer.send
// and its _unsafe_send): one connection per broker, each put written whole
// with sendall (the legacy line without checksum), then one reply line and
// its body read. It has no way to resynchronise after a close, so an
// oversized put must cost only that send: the next one on the same
// connection succeeds.
func TestOversizedPutKeepsMetaQPythonProducerConnection(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	c := dialMetaQ(t, b.Addr())
	requireCode(t, protocol.CodeOK, c.legacyPut("py", 0, []byte("first")))

	r := c.legacyPut("py", 0, bytes.Repeat([]byte("p"), javaMaxReadBuffer+1))
	requireCode(t, protocol.CodeInternal, r)
	require.Contains(t, string(r.Body), "maximum message size")

	r = c.legacyPut("py", 0, []byte("second"))
	requireCode(t, protocol.CodeOK, r)
	require.Equal(t, []string{"first", "second"}, c.payloads("py", 0))
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMessageSizeAboveMetaQLimitWarnsAtStart mirrors
// MetaMessageSessionFactory's consumer limit from the operator's side: a
// larger maxMessageSize still works (for metaq-go consumers), but the broker
// warns at start, naming MetaQ's limit.
func TestMessageSizeAboveMetaQLimitWarnsAtStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		warn bool
	}{{"default", 0, false}, {"at the limit", javaMaxReadBuffer, false}, {"above", 4 << 20, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			b, err := brokertest.New(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) {
				o.MaxMessageSize = tc.size
				o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			}})
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, b.Start(ctx))
			defer func() { _ = b.Shutdown(ctx) }()
			if !tc.warn {
				require.NotContains(t, logs.String(), "maxMessageSize")
				return
			}
			require.Contains(t, logs.String(), "level=WARN")
			require.Contains(t, logs.String(), "metaq_client_limit=2097152")
			// Larger messages still work for clients that can read them.
			c := dialMetaQ(t, b.Addr())
			requireCode(t, protocol.CodeOK, c.put("big", 0, bytes.Repeat([]byte("m"), 3<<20)))
		})
	}
}
