package producer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/conn/authtest"
	"github.com/metaq-go/metaq/internal/tlsconf/tlstest"
	"github.com/metaq-go/metaq/producer"
	"github.com/metaq-go/metaq/protocol"
)

const secret = "pr0ducer-secret"

// tlsAuthFront starts a broker behind an authenticating TLS front and
// returns the front, the broker's own address and the front's CA.
func tlsAuthFront(t *testing.T) (*authtest.Server, string, *tlstest.CA) {
	ca := tlstest.NewCA(t, "cluster-ca")
	addr := startDirectBroker(t, 1)
	return authtest.Start(t, authtest.Options{Users: map[string]string{"alice": secret}, CA: ca, Upstream: addr}), addr, ca
}

func TestProducerOverTLSWithAuthReauthenticatesOnReconnect(t *testing.T) {
	front, addr, ca := tlsAuthFront(t)
	for _, mech := range []string{"", protocol.MechPlain} {
		p, err := producer.New(testCtx(t, 20*time.Second), producer.WithBroker(front.Addr, 1),
			producer.WithTLSFiles(ca.CertFile, "", ""), producer.WithSASL(mech, "alice", secret))
		require.NoError(t, err)
		auths := front.Auths()
		_, err = p.Send(testCtx(t, 20*time.Second), producer.Message{Topic: "secure", Payload: []byte("one " + mech)})
		require.NoError(t, err)
		require.Equal(t, auths+1, front.Auths())

		front.DropConnections() // the producer reconnects, and must authenticate again
		_, err = p.Send(testCtx(t, 20*time.Second), producer.Message{Topic: "secure", Payload: []byte("two " + mech)})
		require.NoError(t, err)
		require.Equal(t, auths+2, front.Auths())
		require.NoError(t, p.Close(context.Background()))
	}
	var got []string
	for _, m := range readBack(t, addr, "secure", 0) {
		got = append(got, string(m.Data))
	}
	require.Equal(t, []string{"one ", "two ", "one PLAIN", "two PLAIN"}, got)
}

func TestProducerWrongPasswordFailsWithErrAuth(t *testing.T) {
	front, _, ca := tlsAuthFront(t)
	p, err := producer.New(testCtx(t, 20*time.Second), producer.WithBroker(front.Addr, 1),
		producer.WithTLSFiles(ca.CertFile, "", ""), producer.WithSASL("", "alice", "wrong-"+secret))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	_, err = p.Send(testCtx(t, 20*time.Second), producer.Message{Topic: "secure", Payload: []byte("x")})
	require.ErrorIs(t, err, producer.ErrAuth)
	require.False(t, producer.IsRetriable(err))
	require.Contains(t, err.Error(), authtest.Reason)
	require.NotContains(t, err.Error(), secret)
}

func TestProducerUntrustedCA(t *testing.T) {
	front, _, _ := tlsAuthFront(t)
	other := tlstest.NewCA(t, "other-ca")
	p, err := producer.New(testCtx(t, 20*time.Second), producer.WithBroker(front.Addr, 1),
		producer.WithTLSFiles(other.CertFile, "", ""), producer.WithSASL("", "alice", secret), producer.WithRetry(time.Millisecond, 1))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	_, err = p.Send(testCtx(t, 20*time.Second), producer.Message{Topic: "secure", Payload: []byte("x")})
	require.Error(t, err)
	require.Contains(t, err.Error(), "certificate")
	require.Zero(t, front.Auths()+front.Failures())
}

func TestProducerSecurityOptionsAreValidated(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		opt      producer.Option
		want     string
	}{
		{"missing CA file", producer.WithTLSFiles("/nonexistent/ca.pem", "", ""), "/nonexistent/ca.pem"},
		{"nil TLS config", producer.WithTLS(nil), "nil config"},
		{"no user", producer.WithSASL("", "", secret), "empty user"},
		{"unknown mechanism", producer.WithSASL("GSSAPI", "alice", secret), "GSSAPI"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			_, err := producer.New(testCtx(t, 5*time.Second), producer.WithBroker("127.0.0.1:1", 1), tc.opt)
			require.ErrorContains(t, err, tc.want)
			require.False(t, strings.Contains(err.Error(), secret))
		})
	}
}
