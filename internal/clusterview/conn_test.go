package clusterview

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/internal/conn/authtest"
	"github.com/metaq-go/metaq/internal/tlsconf"
	"github.com/metaq-go/metaq/internal/tlsconf/tlstest"
)

// DialBroker (and so every request of this package) connects with the TLS
// configuration and credentials of WithDial.
func TestDialBrokerWithDialOptions(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	s := authtest.Start(t, authtest.Options{Users: map[string]string{"alice": "pw-secret"}, CA: ca})
	cfg, err := tlsconf.Client(ca.CertFile, "", "")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	plain, err := DialBroker(ctx, s.Addr) // without WithDial: plaintext, to a TLS port
	require.NoError(t, err)
	_, err = plain.Version(ctx)
	require.Error(t, err)
	plain.Close()

	secure := WithDial(ctx, func() (conn.Options, error) {
		return conn.Options{TLS: cfg, Auth: &conn.Auth{User: "alice", Password: "pw-secret"}}, nil
	})
	c, err := DialBroker(secure, s.Addr)
	require.NoError(t, err)
	_, err = c.Version(ctx)
	require.NoError(t, err)
	c.Close()
	require.Equal(t, 1, s.Auths())

	wrong := WithDial(ctx, func() (conn.Options, error) {
		return conn.Options{TLS: cfg, Auth: &conn.Auth{User: "alice", Password: "nope"}}, nil
	})
	_, err = DialBroker(wrong, s.Addr)
	require.ErrorIs(t, err, conn.ErrAuth)
	require.ErrorContains(t, err, "password")

	bad := errors.New("no password file")
	_, err = DialBroker(WithDial(ctx, func() (conn.Options, error) { return conn.Options{}, bad }), s.Addr)
	require.ErrorIs(t, err, bad)
}
