package broker_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/broker/config"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/internal/conn/authtest"
	"github.com/metaq-go/metaq/internal/tlsconf"
	"github.com/metaq-go/metaq/internal/tlsconf/tlstest"
)

const replSecret = "s1ave-secret"

// A slave reaches its master through TLS with SCRAM credentials
// (MasterTLS, MasterUser/MasterPassword), and authenticates again when the
// connection breaks.
func TestSlaveFollowsOverTLSWithAuth(t *testing.T) {
	m := startMember(t, "", broker.ReplicationOptions{MinSyncSlaves: 1, MaxDelay: time.Minute})
	ca := tlstest.NewCA(t, "cluster-ca")
	front := authtest.Start(t, authtest.Options{Users: map[string]string{"replicator": replSecret}, CA: ca, Upstream: m.Addr()})
	cfg, err := tlsconf.Client(ca.CertFile, "", "")
	require.NoError(t, err)
	s := startMember(t, "", broker.ReplicationOptions{MemberID: 1, MasterAddr: front.Addr,
		MasterTLS: cfg, MasterUser: "replicator", MasterPassword: replSecret})
	mc := dialT(t, m.Addr())
	waitInSync(t, mc, 1, true)
	a, err := put(context.Background(), mc, 0, []byte("over tls"))
	require.NoError(t, err)
	requireHas(t, s, a) // a sync slave has every acknowledged put
	require.Positive(t, front.Auths())

	auths := front.Auths()
	front.DropConnections()
	require.Eventually(t, func() bool { return front.Auths() > auths }, 30*time.Second, 10*time.Millisecond,
		"the follower reconnects and authenticates again")
	waitInSync(t, mc, 1, true)
	b, err := put(context.Background(), mc, 1, []byte("after reconnect"))
	require.NoError(t, err)
	requireHas(t, s, b)
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
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

// A wrong password never lets the slave follow; the broker's log says why
// and never shows the password.
func TestSlaveWithWrongPasswordLogsTheRefusal(t *testing.T) {
	m := startMember(t, "", broker.ReplicationOptions{})
	ca := tlstest.NewCA(t, "cluster-ca")
	front := authtest.Start(t, authtest.Options{Users: map[string]string{"replicator": replSecret}, CA: ca, Upstream: m.Addr()})
	cfg, err := tlsconf.Client(ca.CertFile, "", "")
	require.NoError(t, err)
	var logs syncBuffer
	brokertest.Start(t, brokertest.Options{BrokerID: 5, Partitions: 2, Modify: func(o *broker.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		o.Replication = broker.ReplicationOptions{MemberID: 1, MasterAddr: front.Addr, FollowerMaxWait: 100 * time.Millisecond,
			MasterTLS: cfg, MasterUser: "replicator", MasterPassword: "wrong-" + replSecret}
	}})
	require.Eventually(t, func() bool { return bytes.Contains([]byte(logs.String()), []byte(authtest.Reason)) },
		30*time.Second, 10*time.Millisecond, "the refusal is logged")
	require.NotContains(t, logs.String(), replSecret)
	require.Zero(t, front.Auths())
	require.Empty(t, slaveLine(t, dialT(t, m.Addr()), 1))
}

// [security] brokerUser, brokerPasswordFile and tls.caFile reach the
// follower's options; unusable files stop the start with an error naming
// the key and the file, never the password.
func TestSecurityConfigReachesTheFollower(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pw, []byte(replSecret+"\n"), 0o600))
	load := func(security string) (broker.Options, error) {
		cfg, err := config.Parse([]byte("[system]\nbrokerId=1\n[zookeeper]\nzk.zkEnable=false\n[security]\n"+security), "ini", config.WithoutEnv())
		require.NoError(t, err)
		o := broker.OptionsFromConfig(cfg, nil)
		return o, broker.ApplyReplicationClient(&o, cfg.ReplicationClient())
	}
	o, err := load("brokerUser=replicator\nbrokerPasswordFile=" + pw + "\ntls.caFile=" + ca.CertFile + "\n")
	require.NoError(t, err)
	ro := o.Replication
	require.Equal(t, "replicator", ro.MasterUser)
	require.Equal(t, replSecret, ro.MasterPassword, "one trailing newline dropped")
	require.NotNil(t, ro.MasterTLS)
	require.NotNil(t, ro.MasterTLS.RootCAs)

	o, err = load("")
	require.NoError(t, err)
	require.Nil(t, o.Replication.MasterTLS)
	require.Empty(t, o.Replication.MasterUser)

	open := filepath.Join(dir, "open")
	require.NoError(t, os.WriteFile(open, []byte(replSecret), 0o644))
	require.NoError(t, os.Chmod(open, 0o644))
	for _, tc := range []struct{ security, want string }{
		{"brokerUser=replicator\nbrokerPasswordFile=" + open + "\n", "chmod 600"},
		{"brokerUser=replicator\nbrokerPasswordFile=" + filepath.Join(dir, "missing") + "\n", "brokerPasswordFile"},
		{"tls.caFile=" + filepath.Join(dir, "missing-ca.pem") + "\n", "missing-ca.pem"},
	} {
		_, err := load(tc.security)
		require.ErrorContains(t, err, tc.want)
		require.NotContains(t, err.Error(), replSecret)
	}
}

// A real secured master (TLS, users file, ACL): a slave with the
// replicator's credentials and the cluster CA follows it; one with a wrong
// password logs the refusal and never joins the master's replica set.
func TestSlaveFollowsSecureMaster(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	secure := brokertest.Security{CA: ca, Users: map[string]string{"replicator": replSecret, "alice": "alice-" + replSecret},
		ACL: "- {principal: replicator, operations: [admin]}\n- {principal: alice, operations: [put, stats], topics: [\"*\"]}\n"}
	m := brokertest.Start(t, brokertest.Options{BrokerID: 5, Partitions: 2, Modify: func(o *broker.Options) {
		brokertest.Secure(t, secure)(o)
		o.Replication = broker.ReplicationOptions{MinSyncSlaves: 1, MaxDelay: time.Minute}
	}})
	cfg, err := tlsconf.Client(ca.CertFile, "", "")
	require.NoError(t, err)
	follow := func(password string) *broker.Broker {
		return startMember(t, "", broker.ReplicationOptions{MemberID: 1, MasterAddr: m.Addr(),
			MasterTLS: cfg, MasterUser: "replicator", MasterPassword: password})
	}
	s := follow(replSecret)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mc, err := conn.Dial(ctx, m.Addr(), conn.Options{TLS: cfg, Auth: &conn.Auth{User: "replicator", Password: replSecret}})
	require.NoError(t, err)
	defer mc.Close()
	waitInSync(t, mc, 1, true)
	pc, err := conn.Dial(ctx, m.Addr(), conn.Options{TLS: cfg, Auth: &conn.Auth{User: "alice", Password: "alice-" + replSecret}})
	require.NoError(t, err)
	defer pc.Close()
	a, err := put(ctx, pc, 0, []byte("secured"))
	require.NoError(t, err)
	requireHas(t, s, a)

	var logs syncBuffer
	brokertest.Start(t, brokertest.Options{BrokerID: 5, Partitions: 2, Modify: func(o *broker.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		o.Replication = broker.ReplicationOptions{MemberID: 2, MasterAddr: m.Addr(), FollowerMaxWait: 100 * time.Millisecond,
			MasterTLS: cfg, MasterUser: "replicator", MasterPassword: "wrong-" + replSecret}
	}})
	require.Eventually(t, func() bool { return bytes.Contains([]byte(logs.String()), []byte(conn.ErrAuth.Error())) },
		30*time.Second, 10*time.Millisecond, "the refusal is logged")
	require.NotContains(t, logs.String(), replSecret)
	require.Empty(t, slaveLine(t, mc, 2))
}
