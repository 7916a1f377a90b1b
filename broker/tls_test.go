package broker_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/internal/tlsconf"
	"github.com/metaq-go/metaq/internal/tlsconf/tlstest"
	"github.com/metaq-go/metaq/protocol"
)

// tlsFiles are the broker's certificate and key at fixed paths (so a test
// can rotate them) issued by ca.
type tlsFiles struct{ cert, key string }

func newTLSFiles(t testing.TB, ca *tlstest.CA) tlsFiles {
	dir := t.TempDir()
	f := tlsFiles{cert: filepath.Join(dir, "broker.pem"), key: filepath.Join(dir, "broker-key.pem")}
	f.install(t, ca)
	return f
}

// install replaces the files with a certificate from ca.
func (f tlsFiles) install(t testing.TB, ca *tlstest.CA) { ca.IssueAt(t, "broker", f.cert, f.key) }

// startTLSBroker starts a broker whose port speaks TLS with a certificate
// from ca; clientCA, when set, requires client certificates from it.
func startTLSBroker(t testing.TB, files tlsFiles, clientCA string, modify func(*broker.Options)) *broker.Broker {
	t.Helper()
	srv, err := tlsconf.NewServer(files.cert, files.key, clientCA)
	require.NoError(t, err)
	return brokertest.Start(t, brokertest.Options{Partitions: 2, Modify: func(o *broker.Options) {
		o.TLS = srv
		if modify != nil {
			modify(o)
		}
	}})
}

// dialTLS connects and completes the handshake (and, under TLS 1.3, learns
// of a refused client certificate by a round trip).
func dialTLS(t testing.TB, addr string, cfg *tls.Config) (*brokertest.Client, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	cl := &brokertest.Client{Conn: c, R: bufio.NewReader(c)}
	cl.Send(t, "version 1\r\n")
	line, _, err := cl.TryReadReply(10 * time.Second)
	if err != nil {
		return nil, err
	}
	if line != "result 200 "+fmt.Sprint(len(broker.Version+" "+protocol.LongPollCapability))+" 1" {
		return nil, fmt.Errorf("version reply %q", line)
	}
	return cl, nil
}

func tlsPutGet(t testing.TB, c *brokertest.Client, topic string, opaque int32, data string) {
	t.Helper()
	req := protocol.PutRequest{Topic: topic, Partition: 0, Data: []byte(data), Checksum: protocol.Checksum([]byte(data)), OpaqueID: opaque}
	c.Send(t, string(req.AppendTo(nil)))
	r := expectReply(t, c, 200, opaque)
	_, _, off := putResult(t, r)
	c.Send(t, fmt.Sprintf("get %s g 0 %d 4096 %d\r\n", topic, off, opaque+1))
	r = expectReply(t, c, 200, opaque+1)
	msgs := messages(t, r.body)
	require.NotEmpty(t, msgs)
	require.Equal(t, data, string(msgs[0].Data))
}

func TestTLSPutGetAndUntrustedCA(t *testing.T) {
	ca, other := tlstest.NewCA(t, "ca"), tlstest.NewCA(t, "other")
	b := startTLSBroker(t, newTLSFiles(t, ca), "", nil)

	c, err := dialTLS(t, b.Addr(), &tls.Config{RootCAs: ca.Pool()})
	require.NoError(t, err)
	tlsPutGet(t, c, "secure", 10, "over tls")

	_, err = dialTLS(t, b.Addr(), &tls.Config{RootCAs: other.Pool()})
	require.ErrorContains(t, err, "certificate signed by unknown authority")
	_, err = dialTLS(t, b.Addr(), &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS11})
	require.Error(t, err, "TLS 1.1 is refused")
	tlsPutGet(t, c, "secure", 20, "still there")
}

func TestTLSPlaintextClientIsClosed(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	b := startTLSBroker(t, newTLSFiles(t, ca), "", func(o *broker.Options) { o.TLSHandshakeTimeout = 500 * time.Millisecond })

	// A MetaQ client speaks first: it gets one line saying why, then EOF.
	c := brokertest.Dial(t, b.Addr())
	c.Send(t, "version 1\r\n")
	r := expectReply(t, c, protocol.CodeUnavailable, 0)
	require.Contains(t, string(r.body), "requires TLS")
	expectClosed(t, c, 10*time.Second)

	// A client that waits for the server is closed at the handshake deadline.
	silent := brokertest.Dial(t, b.Addr())
	expectClosed(t, silent, 10*time.Second)
}

func TestTLSReloadKeepsConnections(t *testing.T) {
	ca1, ca2 := tlstest.NewCA(t, "ca1"), tlstest.NewCA(t, "ca2")
	files := newTLSFiles(t, ca1)
	b := startTLSBroker(t, files, "", nil)
	old, err := dialTLS(t, b.Addr(), &tls.Config{RootCAs: ca1.Pool()})
	require.NoError(t, err)
	tlsPutGet(t, old, "rotate", 10, "before")

	// A broken replacement: refused, the old certificate stays.
	require.NoError(t, os.WriteFile(files.cert, []byte("garbage"), 0o600))
	require.ErrorContains(t, b.ReloadTLS(), "previous certificate stays in use")
	_, err = dialTLS(t, b.Addr(), &tls.Config{RootCAs: ca1.Pool()})
	require.NoError(t, err)

	files.install(t, ca2)
	require.NoError(t, b.ReloadTLS())
	_, err = dialTLS(t, b.Addr(), &tls.Config{RootCAs: ca1.Pool()})
	require.Error(t, err, "new handshakes get the new certificate")
	fresh, err := dialTLS(t, b.Addr(), &tls.Config{RootCAs: ca2.Pool()})
	require.NoError(t, err)
	tlsPutGet(t, fresh, "rotate", 20, "new cert")
	tlsPutGet(t, old, "rotate", 30, "old connection survives")
}

func TestTLSMutualPrincipalAndLimits(t *testing.T) {
	ca, other := tlstest.NewCA(t, "ca"), tlstest.NewCA(t, "other")
	b := startTLSBroker(t, newTLSFiles(t, ca), ca.CertFile, func(o *broker.Options) { o.MaxConnectionsPerIP = 1 })
	pool := ca.Pool()
	cert := func(ca *tlstest.CA, cn string) tls.Certificate {
		c, k := ca.Issue(t, cn)
		kp, err := tls.LoadX509KeyPair(c, k)
		require.NoError(t, err)
		return kp
	}
	_, err := dialTLS(t, b.Addr(), &tls.Config{RootCAs: pool})
	require.Error(t, err, "no client certificate")
	_, err = dialTLS(t, b.Addr(), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert(other, "mallory")}})
	require.Error(t, err, "a client certificate from an untrusted CA")

	alice, err := dialTLS(t, b.Addr(), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert(ca, "alice")}})
	require.NoError(t, err)
	require.Equal(t, []string{"alice@127.0.0.1"}, b.ConnPrincipals(), "the principal and the real client address")
	tlsPutGet(t, alice, "mtls", 10, "from alice")

	// maxConnectionsPerIp counts the client's address, not the relay's.
	received, err := handshake(t, b.Addr(), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert(ca, "bob")}})
	require.Error(t, err, "bob is over the limit")
	require.Zero(t, received, "refused before the handshake")
}

// countingConn counts the bytes read from the server.
type countingConn struct {
	net.Conn
	n atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// handshake runs a TLS handshake with addr and returns the bytes the
// server sent: 0 when it closed the connection without a ServerHello.
func handshake(t testing.TB, addr string, cfg *tls.Config) (received int64, err error) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
	require.NoError(t, err)
	defer raw.Close()
	require.NoError(t, raw.SetDeadline(time.Now().Add(30*time.Second)))
	cc := &countingConn{Conn: raw}
	cfg = cfg.Clone()
	cfg.ServerName = "127.0.0.1"
	err = tls.Client(cc, cfg).Handshake()
	return cc.n.Load(), err
}

// waitTLSRelays waits until the TLS front holds n connections (and so n
// counts against maxConnectionsPerIp).
func waitTLSRelays(t testing.TB, b *broker.Broker, n int64) {
	t.Helper()
	require.Eventually(t, func() bool { return b.TLSRelays() == n }, 30*time.Second, 10*time.Millisecond,
		"want %d TLS connections, have %d", n, b.TLSRelays())
}

// maxConnectionsPerIp is applied when the TLS front accepts, before the
// handshake; the engine does not count the relayed connection again, and
// the plaintext port shares the count.
func TestTLSPerIPLimitBeforeHandshake(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	b := startTLSBroker(t, newTLSFiles(t, ca), "", func(o *broker.Options) {
		o.MaxConnectionsPerIP = 2
		o.PlaintextAddr = "127.0.0.1:0"
	})
	cfg := &tls.Config{RootCAs: ca.Pool()}
	first, err := dialTLS(t, b.Addr(), cfg)
	require.NoError(t, err)
	second, err := dialTLS(t, b.Addr(), cfg)
	require.NoError(t, err, "the second connection is within the limit")
	tlsPutGet(t, first, "perip", 10, "first")
	tlsPutGet(t, second, "perip", 20, "second")

	received, err := handshake(t, b.Addr(), cfg)
	require.Error(t, err, "the third connection from 127.0.0.1 is refused")
	require.Zero(t, received, "refused before the handshake: the broker sent no ServerHello")
	plain := brokertest.Dial(t, b.PlaintextAddr())
	r := expectReply(t, plain, protocol.CodeUnavailable, 0)
	require.Contains(t, string(r.body), "too many connections from 127.0.0.1 (limit 2)")
	expectClosed(t, plain, 10*time.Second)

	require.NoError(t, first.Close())
	waitTLSRelays(t, b, 1)
	third, err := dialTLS(t, b.Addr(), cfg)
	require.NoError(t, err, "a freed slot is available again")
	tlsPutGet(t, third, "perip", 30, "third")
	tlsPutGet(t, second, "perip", 40, "second again")
}

// Handshakes in progress count against maxConnectionsPerIp, and every
// failed handshake (timeout, untrusted certificate, plaintext client)
// releases its count: a leak would lock the address out.
func TestTLSPerIPLimitCountsHandshakesAndReleasesFailures(t *testing.T) {
	ca, other := tlstest.NewCA(t, "ca"), tlstest.NewCA(t, "other")
	b := startTLSBroker(t, newTLSFiles(t, ca), "", func(o *broker.Options) {
		o.MaxConnectionsPerIP = 2
		o.TLSHandshakeTimeout = 2 * time.Second
	})
	// Two clients that never send a ClientHello: both handshakes wait.
	silent := []*brokertest.Client{brokertest.Dial(t, b.Addr()), brokertest.Dial(t, b.Addr())}
	waitTLSRelays(t, b, 2)
	received, err := handshake(t, b.Addr(), &tls.Config{RootCAs: ca.Pool()})
	require.Error(t, err, "a third handshake from 127.0.0.1 is refused")
	require.Zero(t, received, "refused before the handshake: the broker sent no ServerHello")
	for _, c := range silent {
		expectClosed(t, c, 30*time.Second) // the handshake timeout
	}
	waitTLSRelays(t, b, 0)

	for i := range 3 { // more failures than the limit
		_, err := dialTLS(t, b.Addr(), &tls.Config{RootCAs: other.Pool()})
		require.ErrorContains(t, err, "certificate signed by unknown authority", "attempt %d", i)
		waitTLSRelays(t, b, 0)
		c := brokertest.Dial(t, b.Addr())
		c.Send(t, "version 1\r\n")
		r := expectReply(t, c, protocol.CodeUnavailable, 0)
		require.Contains(t, string(r.body), "requires TLS", "attempt %d", i)
		expectClosed(t, c, 10*time.Second)
		waitTLSRelays(t, b, 0)
	}
	for i := range 2 {
		c, err := dialTLS(t, b.Addr(), &tls.Config{RootCAs: ca.Pool()})
		require.NoError(t, err, "connection %d within the limit after the failures", i)
		tlsPutGet(t, c, "released", int32(10*(i+1)), "ok")
	}
}

func TestTLSPlaintextPort(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	b := startTLSBroker(t, newTLSFiles(t, ca), "", func(o *broker.Options) { o.PlaintextAddr = "127.0.0.1:0" })
	require.NotEmpty(t, b.PlaintextAddr())
	require.NotEqual(t, b.Addr(), b.PlaintextAddr())
	tlsPutGet(t, brokertest.Dial(t, b.PlaintextAddr()), "legacy", 10, "plain")
	c, err := dialTLS(t, b.Addr(), &tls.Config{RootCAs: ca.Pool()})
	require.NoError(t, err)
	tlsPutGet(t, c, "legacy", 20, "tls")
}

// A TLS client that sends gets and never reads the replies is closed by
// the engine (it keeps sending while paused); its relay, blocked writing to
// the client, ends too instead of living as long as the client.
func TestTLSRelayEndsWithEngineConnection(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	b := startTLSBroker(t, newTLSFiles(t, ca), "", func(o *broker.Options) { o.MaxConnOutputBytes = 64 << 10 })
	c, err := dialTLS(t, b.Addr(), &tls.Config{RootCAs: ca.Pool()})
	require.NoError(t, err)
	data := strings.Repeat("x", 512<<10)
	tlsPutGet(t, c, "big", 10, data)
	require.Equal(t, int64(1), b.TLSRelays())
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() { // never reads
		defer close(sent)
		get := []byte("get big g 0 0 1048576 99\r\n")
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.Write(get); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
		}
	}()
	defer func() { close(stop); <-sent }()
	require.Eventually(t, func() bool { return b.TLSRelays() == 0 }, 60*time.Second, 20*time.Millisecond,
		"the relay of a closed connection must end although its client does not read")
}
