package faulttest

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// panicTopicEnv is broker/faultinject_on.go's variable: in the faultinject
// build every request for the topic it names panics in its handler.
const panicTopicEnv = "METAQ_FAULTINJECT_PANIC_TOPIC"

// metric reads one unlabelled sample of the admin port's /metrics.
func (p *proc) metric(name string) (float64, error) {
	code, body, err := p.adminGet("/metrics")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("/metrics answered %d: %s", code, body)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0, fmt.Errorf("no sample %s in /metrics", name)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// requireClosedBy sends req on a fresh connection and requires that the
// broker closes that connection instead of answering.
func requireClosedBy(t *testing.T, addr string, req protocol.Request) {
	t.Helper()
	c := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := c.Do(ctx, conn.ProtocolRequest(req))
	require.Error(t, err, "the broker answered a poisoned %s (%d %s) instead of closing the connection", req.Verb(), rep.Code, rep.Body)
	select {
	case <-c.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("the connection of a poisoned %s is still open: %v", req.Verb(), err)
	}
}

// TestBinaryHandlerPanicCostsOnlyItsConnection runs a binary whose handlers
// panic for one topic (panicTopicEnv, compiled in with the
// faultinject tag) under pipelined load on the other topic: a poisoned put
// (handled on the event loop) and a poisoned get (on a read worker) each
// close only their connection; the process lives, the producers keep being
// acknowledged, a get on another connection is served, /metrics counts the
// panics, stderr has the stacks, and nothing acknowledged is lost.
func TestBinaryHandlerPanicCostsOnlyItsConnection(t *testing.T) {
	t.Parallel()
	const poisoned = "boom"
	b := startBroker(t, config{env: []string{panicTopicEnv + "=" + poisoned}, extra: []string{"autoCreateTopics=true"}})
	l := newLedger()
	reader := dial(t, b.addr)
	load(t, b.addr, "panic", 3, allParts, l, 300, func() {
		data := []byte("poison")
		for i, req := range []protocol.Request{
			&protocol.PutRequest{Topic: poisoned, Checksum: protocol.Checksum(data), Data: data},
			&protocol.GetRequest{Topic: poisoned, Group: "g", MaxSize: 4096},
		} {
			before := l.nAck.Load()
			requireClosedBy(t, b.addr, req)
			eventually(t, 60*time.Second, func() (bool, string) {
				b.requireAlive(fmt.Sprintf("a panic in a %s handler", req.Verb()))
				n := l.nAck.Load() - before
				return n >= 100, fmt.Sprintf("producers on other connections after the %s panic: %d acknowledged since, want 100", req.Verb(), n)
			})
			rep, err := get(reader, int32(i), 0, 4096)
			require.NoError(t, err, "a get on another connection after the %s panic", req.Verb())
			require.Equal(t, protocol.VerbValue, rep.Verb, "a get on another connection after the %s panic: %d %s", req.Verb(), rep.Code, rep.Body)
		}
	})
	eventually(t, 10*time.Second, func() (bool, string) {
		n, err := b.metric("metaq_handler_panics_total")
		return err == nil && n >= 2, fmt.Sprintf("metaq_handler_panics_total = %v (err %v), want ≥ 2", n, err)
	})
	logs := b.stderr.String()
	for _, want := range []string{"request handler panicked", "fault injection", "runtime/debug.Stack", "faultinject_on.go"} {
		require.Contains(t, logs, want, "the broker's stderr must log each panic with its stack")
	}
	b.requireAlive("two handler panics")
	l.audit(t, readAll(t, b.addr, false), auditOpts{})
}
