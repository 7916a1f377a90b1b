package conn_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/internal/conn/authtest"
	"github.com/metaq-go/metaq/internal/tlsconf"
	"github.com/metaq-go/metaq/internal/tlsconf/tlstest"
	"github.com/metaq-go/metaq/protocol"
)

const secret = "pa55-w0rd-never-shown"

var users = map[string]string{"alice": secret}

// requireNoSecret fails when err shows the password.
func requireNoSecret(t *testing.T, err error) {
	t.Helper()
	require.NotContains(t, err.Error(), secret)
	require.NotContains(t, strings.ToLower(err.Error()), "pa55")
}

func TestAuthBeforeAnyRequest(t *testing.T) {
	for _, mech := range []string{"", protocol.MechSCRAMSHA256, protocol.MechPlain, "plain"} {
		t.Run("mechanism "+mech, func(t *testing.T) {
			s := authtest.Start(t, authtest.Options{Users: users})
			c := dial(t, s.Addr, conn.Options{Auth: &conn.Auth{Mechanism: mech, User: "alice", Password: secret}})
			v, err := c.Version(ctxT(t)) // the front refuses version before auth
			require.NoError(t, err)
			require.Equal(t, "authtest", v)
			require.Equal(t, 1, s.Auths())
		})
	}
}

func TestAuthWithoutCredentialsIsRefusedByTheBroker(t *testing.T) {
	s := authtest.Start(t, authtest.Options{Users: users})
	c := dial(t, s.Addr, conn.Options{})
	_, err := c.Version(ctxT(t))
	require.ErrorIs(t, err, &conn.ServerError{Code: protocol.CodeUnauthorized})
}

func TestAuthWrongPasswordOrUser(t *testing.T) {
	s := authtest.Start(t, authtest.Options{Users: users})
	for _, tc := range []struct{ scenario, mech, user, pw string }{
		{"SCRAM wrong password", protocol.MechSCRAMSHA256, "alice", secret + "x"},
		{"PLAIN wrong password", protocol.MechPlain, "alice", secret + "x"},
		{"SCRAM unknown user", protocol.MechSCRAMSHA256, "bob", secret},
		{"PLAIN unknown user", protocol.MechPlain, "bob", secret},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			_, err := conn.Dial(ctxT(t), s.Addr, conn.Options{Auth: &conn.Auth{Mechanism: tc.mech, User: tc.user, Password: tc.pw}})
			require.ErrorIs(t, err, conn.ErrAuth)
			require.False(t, conn.IsRetriable(err), "a refused password is not retriable: %v", err)
			require.Contains(t, err.Error(), authtest.Reason)
			require.Contains(t, err.Error(), tc.user)
			requireNoSecret(t, err)
		})
	}
	require.Equal(t, 4, s.Failures())
	require.Zero(t, s.Auths())
}

func TestAuthIsPrintedWithoutPassword(t *testing.T) {
	a := conn.Auth{User: "alice", Password: secret}
	s := fmt.Sprintf("%v %+v %#v %s %v %+v", a, a, a, &a, &a, conn.Options{Auth: &a})
	require.NotContains(t, s, secret)
	require.Contains(t, s, "alice (SCRAM-SHA-256)")
}

func TestAuthBadCredentialsRefusedBeforeDialling(t *testing.T) {
	for _, a := range []conn.Auth{{User: "", Password: secret}, {Mechanism: "DIGEST-MD5", User: "alice", Password: secret}} {
		_, err := conn.Dial(ctxT(t), "127.0.0.1:1", conn.Options{Auth: &a})
		require.Error(t, err)
		require.Error(t, a.Validate())
		requireNoSecret(t, err)
	}
}

func TestAuthServerFinalIsVerified(t *testing.T) {
	s := authtest.Start(t, authtest.Options{Users: users, BadServerFinal: true})
	_, err := conn.Dial(ctxT(t), s.Addr, conn.Options{Auth: &conn.Auth{User: "alice", Password: secret}})
	require.ErrorIs(t, err, conn.ErrAuth)
	require.Contains(t, err.Error(), "could not prove")
	requireNoSecret(t, err)
}

func TestAuthAgainstBrokerWithoutAuthVerb(t *testing.T) {
	// A server that answers auth with 400 (an old broker): a clear ErrAuth.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		n, _ := c.Read(buf)
		f := strings.Fields(string(buf[:n]))
		_, _ = c.Write([]byte("result 400 13 " + f[len(f)-1] + "\r\nunknown verb."))
		_, _ = c.Read(buf)
	}()
	_, err = conn.Dial(ctxT(t), ln.Addr().String(), conn.Options{Auth: &conn.Auth{User: "alice", Password: secret}})
	require.ErrorIs(t, err, conn.ErrAuth)
	require.ErrorIs(t, err, conn.ErrBadRequest)
	require.Contains(t, err.Error(), "does the broker support authentication")
}

func TestAuthSilentServerEndsWithinDialTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	_, err = conn.Dial(ctxT(t), ln.Addr().String(), conn.Options{DialTimeout: 200 * time.Millisecond,
		Auth: &conn.Auth{User: "alice", Password: secret}})
	require.ErrorIs(t, err, conn.ErrDial)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	(<-accepted).Close()
}

func TestTLSWithAuth(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	s := authtest.Start(t, authtest.Options{Users: users, CA: ca})
	cfg, err := tlsconf.Client(ca.CertFile, "", "")
	require.NoError(t, err)
	_, port, _ := net.SplitHostPort(s.Addr)
	for _, addr := range []string{s.Addr, net.JoinHostPort("localhost", port)} { // server name from the host
		c := dial(t, addr, conn.Options{TLS: cfg, Auth: &conn.Auth{User: "alice", Password: secret}})
		_, err = c.Version(ctxT(t))
		require.NoError(t, err)
	}
	require.Empty(t, cfg.ServerName, "Dial must not change the caller's config")
}

func TestTLSUntrustedCA(t *testing.T) {
	ca, other := tlstest.NewCA(t, "cluster-ca"), tlstest.NewCA(t, "other-ca")
	s := authtest.Start(t, authtest.Options{Users: users, CA: ca})
	cfg, err := tlsconf.Client(other.CertFile, "", "")
	require.NoError(t, err)
	_, err = conn.Dial(ctxT(t), s.Addr, conn.Options{TLS: cfg, Auth: &conn.Auth{User: "alice", Password: secret}})
	require.ErrorIs(t, err, conn.ErrDial)
	require.Contains(t, err.Error(), "TLS handshake")
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown)
	require.Zero(t, s.Auths()+s.Failures(), "no credentials may be sent to an unverified server")
	requireNoSecret(t, err)
}

func TestTLSPlaintextClientOnTLSPort(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	s := authtest.Start(t, authtest.Options{Users: users, CA: ca})
	_, err := conn.Dial(ctxT(t), s.Addr, conn.Options{Auth: &conn.Auth{User: "alice", Password: secret}})
	require.ErrorIs(t, err, conn.ErrDial)
	requireNoSecret(t, err)
}

func TestMutualTLS(t *testing.T) {
	ca, clients := tlstest.NewCA(t, "cluster-ca"), tlstest.NewCA(t, "client-ca")
	s := authtest.Start(t, authtest.Options{Users: users, CA: ca, ClientCA: clients})
	cert, key := clients.Issue(t, "alice")
	with, err := tlsconf.Client(ca.CertFile, cert, key)
	require.NoError(t, err)
	c := dial(t, s.Addr, conn.Options{TLS: with, Auth: &conn.Auth{User: "alice", Password: secret}})
	_, err = c.Version(ctxT(t))
	require.NoError(t, err)

	without, err := tlsconf.Client(ca.CertFile, "", "")
	require.NoError(t, err)
	// TLS 1.3: the server checks the client certificate after the client's
	// handshake ends, so the refusal may come with the first read.
	c2, err := conn.Dial(ctxT(t), s.Addr, conn.Options{TLS: without, Auth: &conn.Auth{User: "alice", Password: secret}})
	if err == nil {
		_, err = c2.Version(ctxT(t))
		c2.Close()
	}
	require.Error(t, err)
	require.True(t, conn.IsRetriable(err) || errors.Is(err, conn.ErrDial), "%v", err)
}

func TestPoolReauthenticatesOnReconnect(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	s := authtest.Start(t, authtest.Options{Users: users, CA: ca})
	cfg, err := tlsconf.Client(ca.CertFile, "", "")
	require.NoError(t, err)
	p := conn.NewPool(conn.Options{TLS: cfg, Auth: &conn.Auth{User: "alice", Password: secret}}, nil)
	t.Cleanup(func() { p.Close() })
	for round := 1; round <= 3; round++ {
		c, err := p.Get(ctxT(t), s.Addr)
		require.NoError(t, err)
		_, err = c.Version(ctxT(t))
		require.NoError(t, err, "round %d", round)
		require.Equal(t, round, s.Auths())
		s.DropConnections()
		select {
		case <-c.Done():
		case <-ctxT(t).Done():
			t.Fatal("connection not ended by the server")
		}
	}
}
