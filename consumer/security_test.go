package consumer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/consumer"
	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/conn/authtest"
	"github.com/metaq-go/metaq/internal/tlsconf/tlstest"
	"github.com/metaq-go/metaq/protocol"
)

const secret = "c0nsumer-secret"

// secureEnv is a broker reachable only through an authenticating TLS front,
// registered in ZooKeeper as broker 7 at the front's address.
type secureEnv struct {
	*env
	broker *broker.Broker
	front  *authtest.Server
	ca     *tlstest.CA
}

func newSecureEnv(t *testing.T, topic string) *secureEnv {
	e := newEnv(t, 0, 1, topic)
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	ca := tlstest.NewCA(t, "cluster-ca")
	front := authtest.Start(t, authtest.Options{Users: map[string]string{"alice": secret}, CA: ca, Upstream: b.Addr()})
	reg := coordinator.NewRegistrar(e.session(), coordinator.NewPaths(e.root),
		coordinator.BrokerInfo{ID: 7, URI: "meta://" + front.Addr}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, reg.Start(ctx, []coordinator.TopicRegistration{{Topic: topic, NumPartitions: 1, AcceptPublish: true, AcceptSubscribe: true}}))
	t.Cleanup(func() { _ = reg.Close(context.Background()) })
	return &secureEnv{env: e, broker: b, front: front, ca: ca}
}

// pollN polls until n messages arrived and returns their payloads.
func pollN(t *testing.T, c *consumer.Consumer, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []string
	for len(got) < n {
		msgs, err := c.Poll(ctx, n-len(got))
		require.NoError(t, err, "after %d of %d messages", len(got), n)
		for _, m := range msgs {
			got = append(got, string(m.Payload))
		}
	}
	return got
}

func TestConsumerOverTLSWithAuthReauthenticatesOnReconnect(t *testing.T) {
	const topic = "secure"
	e := newSecureEnv(t, topic)
	want := e.produce(e.broker, 7, topic, 0, 20, 16, "first")
	c := newConsumer(t, "g", e.opts(consumer.WithTopics(topic), consumer.WithTLSFiles(e.ca.CertFile, "", ""),
		consumer.WithSASL(protocol.MechSCRAMSHA256, "alice", secret))...)
	start(t, c)
	require.Len(t, pollN(t, c, len(want)), len(want))
	auths := e.front.Auths()
	require.Positive(t, auths)

	e.front.DropConnections() // the consumer reconnects and must authenticate again
	more := e.produce(e.broker, 7, topic, 0, 5, 16, "second")
	got := pollN(t, c, len(more))
	for _, p := range got {
		require.True(t, strings.HasPrefix(p, "second/"), p)
	}
	require.Greater(t, e.front.Auths(), auths)
}

func TestConsumerWrongPasswordShowsErrAuth(t *testing.T) {
	const topic = "secure"
	e := newSecureEnv(t, topic)
	e.produce(e.broker, 7, topic, 0, 1, 16, "m")
	c := newConsumer(t, "g", e.opts(consumer.WithTopics(topic), consumer.WithTLSFiles(e.ca.CertFile, "", ""),
		consumer.WithSASL("", "alice", "wrong-"+secret))...)
	start(t, c)
	eventually(t, 30*time.Second, "the partition reports the refusal", func() bool {
		for _, p := range c.Stats().Partitions {
			if strings.Contains(p.Err, authtest.Reason) {
				require.NotContains(t, p.Err, secret)
				return true
			}
		}
		return false
	})
	require.Zero(t, e.front.Auths())
	require.Zero(t, c.Stats().Delivered)
}

func TestConsumerSecurityOptionsAreValidated(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		opt      consumer.Option
		want     string
	}{
		{"missing CA file", consumer.WithTLSFiles("/nonexistent/ca.pem", "", ""), "/nonexistent/ca.pem"},
		{"nil TLS config", consumer.WithTLS(nil), "nil config"},
		{"no user", consumer.WithSASL("", "", secret), "empty user"},
		{"unknown mechanism", consumer.WithSASL("GSSAPI", "alice", secret), "GSSAPI"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			_, err := consumer.New("g", consumer.WithZooKeeper([]string{"127.0.0.1:1"}, ""), tc.opt)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), secret)
		})
	}
}
