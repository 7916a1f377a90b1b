package producer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/internal/tlsconf/tlstest"
	"github.com/metaq-go/metaq/producer"
	"github.com/metaq-go/metaq/protocol"
)

// A broker with TLS, a users file and an ACL (the real thing, not the
// authtest front): the producer sends over TLS with either mechanism, a
// topic outside the ACL is refused with 403, a wrong password with ErrAuth.
func TestProducerAgainstSecureBroker(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: brokertest.Secure(t, brokertest.Security{CA: ca,
		Users: map[string]string{"alice": secret}, ACL: `- {principal: alice, operations: [put], topics: ["orders*"]}`})})
	send := func(mech, password, topic string) error {
		p, err := producer.New(testCtx(t, 20*time.Second), producer.WithBroker(b.Addr(), 1), producer.WithRetry(time.Millisecond, 1),
			producer.WithTLSFiles(ca.CertFile, "", ""), producer.WithSASL(mech, "alice", password))
		require.NoError(t, err)
		defer p.Close(context.Background())
		_, err = p.Send(testCtx(t, 20*time.Second), producer.Message{Topic: topic, Payload: []byte("m")})
		return err
	}
	require.NoError(t, send(protocol.MechSCRAMSHA256, secret, "orders"))
	require.NoError(t, send(protocol.MechPlain, secret, "orders-eu"))
	err := send("", secret, "payroll")
	require.ErrorIs(t, err, producer.ErrForbidden)
	require.ErrorContains(t, err, "alice")
	for _, mech := range []string{protocol.MechSCRAMSHA256, protocol.MechPlain} {
		err = send(mech, "wrong-"+secret, "orders")
		require.ErrorIs(t, err, producer.ErrAuth, mech)
		require.NotContains(t, err.Error(), secret)
	}
	other := tlstest.NewCA(t, "other-ca")
	p, err := producer.New(testCtx(t, 20*time.Second), producer.WithBroker(b.Addr(), 1), producer.WithRetry(time.Millisecond, 1),
		producer.WithTLSFiles(other.CertFile, "", ""), producer.WithSASL("", "alice", secret))
	require.NoError(t, err)
	defer p.Close(context.Background())
	_, err = p.Send(testCtx(t, 20*time.Second), producer.Message{Topic: "orders", Payload: []byte("m")})
	require.ErrorIs(t, err, producer.ErrBrokerUnreachable)
	require.ErrorContains(t, err, "certificate signed by unknown authority")
}

// A producer without TLS on a broker's TLS port hears why it was cut off:
// the broker's one-line refusal (sent with opaque 0 before it closes) is in
// the error, not just "connection lost".
func TestProducerWithoutTLSOnATLSPortSaysWhy(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: brokertest.Secure(t, brokertest.Security{CA: ca})})
	p, err := producer.New(testCtx(t, 20*time.Second), producer.WithBroker(b.Addr(), 1), producer.WithRetry(time.Millisecond, 1))
	require.NoError(t, err)
	defer p.Close(context.Background())
	_, err = p.Send(testCtx(t, 20*time.Second), producer.Message{Topic: "orders", Payload: []byte("m")})
	require.Error(t, err)
	require.ErrorContains(t, err, "requires TLS")
}
