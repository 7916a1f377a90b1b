package consumer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/consumer"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/internal/tlsconf"
	"github.com/metaq-go/metaq/internal/tlsconf/tlstest"
	"github.com/metaq-go/metaq/protocol"
)

const secureACL = `
- {principal: alice, operations: [put, get, offset], topics: ["orders"], groups: ["billing"]}
`

// A broker with TLS, users and an ACL, registered in ZooKeeper: the
// consumer fetches over TLS with SCRAM; a wrong password shows ErrAuth in
// the partition's stats and delivers nothing.
func TestConsumerAgainstSecureBroker(t *testing.T) {
	const topic = "orders"
	e := newEnv(t, 0, 1, topic)
	ca := tlstest.NewCA(t, "cluster-ca")
	secure := brokertest.Secure(t, brokertest.Security{CA: ca, Users: map[string]string{"alice": secret}, ACL: secureACL})
	b := e.startBroker(3, 1, secure)

	cfg, err := tlsconf.Client(ca.CertFile, "", "")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := conn.Dial(ctx, b.Addr(), conn.Options{TLS: cfg, Auth: &conn.Auth{User: "alice", Password: secret}})
	require.NoError(t, err)
	defer pc.Close()
	for i := 0; i < 10; i++ {
		d := []byte(fmt.Sprintf("secure-%02d", i))
		_, err := pc.Put(ctx, &protocol.PutRequest{Topic: topic, Partition: 0, Checksum: protocol.Checksum(d), Data: d})
		require.NoError(t, err)
	}

	c := newConsumer(t, "billing", e.opts(consumer.WithTopics(topic), consumer.WithTLSFiles(ca.CertFile, "", ""),
		consumer.WithSASL("", "alice", secret))...)
	start(t, c)
	got := pollN(t, c, 10)
	require.Equal(t, "secure-00", got[0])
	require.Equal(t, "secure-09", got[9])
	closeC(t, c) // the group's only partition goes to the next member

	bad := newConsumer(t, "billing", e.opts(consumer.WithTopics(topic), consumer.WithTLSFiles(ca.CertFile, "", ""),
		consumer.WithSASL("", "alice", "wrong-"+secret))...)
	start(t, bad)
	eventually(t, 30*time.Second, "the partition reports the refusal", func() bool {
		for _, p := range bad.Stats().Partitions {
			if strings.Contains(p.Err, conn.ErrAuth.Error()) {
				require.NotContains(t, p.Err, secret)
				return true
			}
		}
		return false
	})
	require.Zero(t, bad.Stats().Delivered)
}
