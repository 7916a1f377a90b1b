package broker_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/broker/config"
	"github.com/metaq-go/metaq/internal/security"
	"github.com/metaq-go/metaq/protocol"
)

// TestTransactionOwnerSurvivesFailover: the owner of a prepared XA
// transaction travels in the transaction stream, so on the promoted slave
// bob still cannot see or commit alice's transaction, and alice can.
// (The slave replicates anonymously here: anonymous is admin in this ACL,
// because the replication client's credentials are another branch's.)
func TestTransactionOwnerSurvivesFailover(t *testing.T) {
	dir := t.TempDir()
	sec := securityFiles(t, dir)
	sec.Anonymous = broker.AnonymousAllowed
	require.NoError(t, os.WriteFile(sec.ACLFile, []byte(testACL+"- {principal: anonymous, operations: [admin]}\n"), 0o600))
	member := func(ro broker.ReplicationOptions) *broker.Broker {
		ro.FollowerMaxWait = 100 * time.Millisecond
		return brokertest.Start(t, brokertest.Options{BrokerID: 5, Partitions: 2,
			Modify: func(o *broker.Options) { o.Replication, o.Security = ro, sec }})
	}
	m := member(broker.ReplicationOptions{MinSyncSlaves: 1, MaxDelay: time.Minute})
	s := member(broker.ReplicationOptions{MemberID: 1, MasterAddr: m.Addr()})
	waitInSync(t, dialT(t, m.Addr()), 1, true)

	const x = "XID:3:0a0b:01:node1"
	alice := brokertest.Dial(t, m.Addr())
	login(t, alice, "alice")
	requireOK(t, txCall(t, alice, txLine(x, "BEGIN", 1), 1))
	requireOK(t, txCall(t, alice, txPutLine("orders", 0, "owned", x, 2), 2))
	requireOK(t, txCall(t, alice, txLine(x, "PREPARE", 3), 3))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, m.Shutdown(ctx))
	require.NoError(t, s.Lead(ctx, 1))

	bob := brokertest.Dial(t, s.Addr())
	login(t, bob, "bob")
	r := txCall(t, bob, txLine("null", "RECOVER", 1), 1)
	requireOK(t, r)
	require.Empty(t, string(r.body), "bob does not see alice's transaction on the new master")
	requireXA(t, txCall(t, bob, txLine(x, "COMMIT_TWO_PHASE", 2), 2), protocol.XAErrNOTA)
	requireXA(t, txCall(t, bob, txLine(x, "ROLLBACK", 3), 3), protocol.XAErrNOTA)

	alice = brokertest.Dial(t, s.Addr())
	login(t, alice, "alice")
	r = txCall(t, alice, txLine("null", "RECOVER", 1), 1)
	requireOK(t, r)
	require.Equal(t, x, string(r.body), "alice still owns it on the new master")
	requireOK(t, txCall(t, alice, txLine(x, "COMMIT_TWO_PHASE", 2), 2))
}

// TestSecurityKeysReachTheBroker: [security] in server.ini becomes
// Options.Security, and the broker enforces it.
func TestSecurityKeysReachTheBroker(t *testing.T) {
	dir := t.TempDir()
	files := securityFiles(t, dir)
	ini := "[system]\nbrokerId=1\n[zookeeper]\nzk.zkEnable=false\n[security]\nusersFile=" + files.UsersFile + "\naclFile=" + files.ACLFile + "\n"
	cfg, err := config.Parse([]byte(ini), "ini", config.WithoutEnv())
	require.NoError(t, err)
	opts := broker.OptionsFromConfig(cfg, slog.New(slog.DiscardHandler))
	require.Equal(t, broker.SecurityOptions{UsersFile: files.UsersFile, ACLFile: files.ACLFile, Anonymous: broker.AnonymousRefused}, opts.Security)
	b := brokertest.Start(t, brokertest.Options{Modify: func(o *broker.Options) { o.Security = opts.Security }})
	c := brokertest.Dial(t, b.Addr())
	c.Send(t, "stats topics 1\r\n")
	expectReply(t, c, protocol.CodeUnauthorized, 1)

	cfg, err = config.Parse([]byte("[system]\nbrokerId=1\n[zookeeper]\nzk.zkEnable=false\n[security]\nallowAnonymous=true\n"), "ini", config.WithoutEnv())
	require.NoError(t, err)
	require.Equal(t, broker.SecurityOptions{}, broker.OptionsFromConfig(cfg, slog.New(slog.DiscardHandler)).Security, "security off")
}

// TestReloadSecurityAppliesNewUsersAndRules: a user added and a rule
// changed after start take effect on ReloadSecurity (SIGHUP); a bad file
// is refused and the old rules stay.
func TestReloadSecurityAppliesNewUsersAndRules(t *testing.T) {
	dir := t.TempDir()
	sec := securityFiles(t, dir)
	b := startSecure(t, filepath.Join(dir, "data"), sec)
	u, err := security.LoadUsers(sec.UsersFile)
	require.NoError(t, err)
	cred, err := security.NewCredentials("dave", "dave-pw")
	require.NoError(t, err)
	require.NoError(t, u.Set("dave", cred))
	require.NoError(t, u.Save(sec.UsersFile))
	require.NoError(t, os.WriteFile(sec.ACLFile, []byte(testACL+"- {principal: dave, operations: [stats]}\n"), 0o600))

	c := brokertest.Dial(t, b.Addr())
	c.Send(t, plainLine("dave", "dave-pw", 1))
	expectReply(t, c, protocol.CodeUnauthorized, 1)
	require.NoError(t, b.ReloadSecurity())
	c.Send(t, plainLine("dave", "dave-pw", 2))
	expectReply(t, c, protocol.CodeOK, 2)
	requireOK(t, txCall(t, c, "stats topics 3\r\n", 3))

	require.NoError(t, os.WriteFile(sec.ACLFile, []byte("- {principal: dave, operations: [everything]}\n"), 0o600))
	err = b.ReloadSecurity()
	require.ErrorIs(t, err, security.ErrBadACLFile)
	requireOK(t, txCall(t, c, "stats topics 4\r\n", 4)) // the old rules stay
}
