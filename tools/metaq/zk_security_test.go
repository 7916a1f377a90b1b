package main

import (
	"context"
	"fmt"
	"hash/crc32"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/consumer"
	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/producer"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// zkSecFixture is a cluster secured with a cluster identity (the broker's
// zk.zkAuth) and a group identity (the consumer group billing's).
type zkSecFixture struct {
	zk, root             string
	p                    coordinator.Paths
	clusterFile, grpFile string
	b                    *broker.Broker
}

const zkSecClusterPassword = "c1uster-Pw"

func writeCreds(t *testing.T, name, creds string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(f, []byte(creds+"\n"), 0o600))
	return f
}

func zkSecSetup(t *testing.T) *zkSecFixture {
	t.Helper()
	f := &zkSecFixture{zk: zktest.Shared(t).Addr, root: fmt.Sprintf("/zksec-%d/meta", time.Now().UnixNano())}
	f.p = coordinator.NewPaths(f.root)
	f.clusterFile = writeCreds(t, "cluster.auth", "cluster:"+zkSecClusterPassword)
	f.grpFile = writeCreds(t, "billing.auth", "billing:b1lling-Pw")
	f.b = f.startBroker(t)
	return f
}

// newBroker builds broker 1 of the fixture authenticating as the cluster
// with password; a single-member replica set under the failover driver, so
// that the epoch, in-sync-set and election nodes exist too.
func (f *zkSecFixture) newBroker(t *testing.T, password string) (*broker.Broker, error) {
	return brokertest.New(t, brokertest.Options{BrokerID: 1, Partitions: 2, ZK: f.zk, ZKRoot: f.root,
		Modify: func(o *broker.Options) {
			o.Topics = []string{"orders"}
			o.AcceptedTopics = []coordinator.TopicPattern{{Pattern: "orders*", NumPartitions: 2, AcceptPublish: true}}
			o.ZK.DigestUser, o.ZK.DigestPassword = "cluster", password
			o.Replication = broker.ReplicationOptions{Failover: true}
			o.ConfigRaw = []byte("[system]\nbrokerId=1\n[zookeeper]\nzk.zkConnect=" + f.zk + "\nzk.zkAuth=cluster:" + password + "\n")
		}})
}

func (f *zkSecFixture) startBroker(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := f.newBroker(t, zkSecClusterPassword)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, b.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Shutdown(ctx)
	})
	anon := zkSecAnon(t, f.zk)
	opsEventually(t, "the broker registered as master with its topic", func() bool {
		ok, _, _ := anon.Exists(context.Background(), f.p.TopicPub("orders", 1))
		return ok
	})
	return b
}

func zkSecAnon(t *testing.T, addr string) *zkrecipes.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := zkrecipes.Connect(ctx, []string{addr})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func (f *zkSecFixture) args(a ...string) []string {
	return append(a, "--zk", f.zk, "--zk-root", f.root)
}

// TestZooKeeperACLsEndToEnd runs a broker with the cluster identity and a
// producer and consumer group with the group identity, end to end, then
// shows that an unauthenticated ZooKeeper client reads every node metaq
// created but can set, delete, re-ACL or create under none of them (except a
// new group under the consumers node); every node kind of paths.go is
// accounted for. Offsets are reset with the group's identity, and not
// without it.
func TestZooKeeperACLsEndToEnd(t *testing.T) {
	f := zkSecSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	prod, err := producer.New(ctx, producer.WithZooKeeper([]string{f.zk}, f.root), producer.WithZKDigestAuthFile(f.grpFile))
	require.NoError(t, err)
	defer prod.Close(context.Background())
	const n = 20
	for i := range n {
		_, err := prod.Send(ctx, producer.Message{Topic: "orders", Payload: []byte(fmt.Sprintf("m%d", i))})
		require.NoError(t, err)
	}
	c, err := consumer.New("billing", consumer.WithZooKeeper([]string{f.zk}, f.root), consumer.WithZKDigestAuthFile(f.grpFile),
		consumer.WithTopics("orders"), consumer.WithManualCommit(), consumer.WithSessionTimeout(4*time.Second))
	require.NoError(t, err)
	require.NoError(t, c.Start(ctx))
	defer c.Close(context.Background())
	got := 0
	for got < n {
		msgs, err := c.Poll(ctx, n)
		require.NoError(t, err)
		got += len(msgs)
	}
	require.NoError(t, c.Commit(ctx))

	anon := zkSecAnon(t, f.zk)
	// Every node kind paths.go builds is either seen in this cluster or
	// named here with the test that covers it.
	seen := map[string]string{
		"Brokers": f.p.Brokers(), "BrokerIDs": f.p.BrokerIDs(), "BrokerID": f.p.BrokerID(1), "BrokerMaster": f.p.BrokerMaster(1),
		"BrokerConfigChecksum": f.p.BrokerConfigChecksum(1), "TopicsLegacy": f.p.TopicsLegacy(), "TopicsPub": f.p.TopicsPub(),
		"TopicsSub": f.p.TopicsSub(), "TopicLegacyDir": f.p.TopicLegacyDir("orders"), "TopicPubDir": f.p.TopicPubDir("orders"),
		"TopicSubDir": f.p.TopicSubDir("orders"), "TopicLegacy": f.p.TopicLegacy("orders", 1), "TopicPub": f.p.TopicPub("orders", 1),
		"TopicSub": f.p.TopicSub("orders", 1), "BrokerAcceptsDir": f.p.BrokerAcceptsDir(), "BrokerAccepts": f.p.BrokerAccepts(1),
		"MetaQRoot": f.p.MetaQRoot(), "ReplicationRoot": f.p.ReplicationRoot(), "Replication": f.p.Replication(1),
		"ReplicationEpoch": f.p.ReplicationEpoch(1), "ReplicationISR": f.p.ReplicationISR(1), "ReplicationElection": f.p.ReplicationElection(1),
		"Consumers": f.p.Consumers(), "Group": f.p.Group("billing"), "GroupMembers": f.p.GroupMembers("billing"),
		"GroupAssign": f.p.GroupAssign("billing"), "GroupOwnersRoot": f.p.GroupOwnersRoot("billing"),
		"GroupOwners": f.p.GroupOwners("billing", "orders"), "GroupOwner": f.p.GroupOwner("billing", "orders", 1, 0),
		"GroupFences": f.p.GroupFences("billing", "orders"), "GroupOffsetsRoot": f.p.GroupOffsetsRoot("billing"),
		"GroupOffsets": f.p.GroupOffsets("billing", "orders"), "GroupOffset": f.p.GroupOffset("billing", "orders", 1, 0),
	}
	elsewhere := map[string]string{ // same class as a seen sibling; all kinds: coordinator.TestEveryNodeKindHasItsACL
		"BrokerSlave":        "a follower's node under the broker id (class cluster)",
		"ReplicationPromote": "written by `metaq cluster promote` (class cluster)",
		"GroupMetaQIDs":      "MetaQ Java consumers' ids (class group)",
		"GroupMemberAssign":  "per-member assignment, under assign (class group)",
	}
	pt := reflect.TypeOf(f.p)
	for i := 0; i < pt.NumMethod(); i++ {
		m := pt.Method(i)
		if m.Type.NumOut() != 1 || m.Type.Out(0).Kind() != reflect.String {
			continue
		}
		_, a := seen[m.Name]
		_, b := elsewhere[m.Name]
		require.True(t, a || b, "node kind Paths.%s is not covered by this test: add it to seen (or elsewhere)", m.Name)
	}
	for name, node := range seen {
		ok, _, err := anon.Exists(ctx, node)
		require.NoError(t, err)
		require.True(t, ok, "%s: %s was not created", name, node)
	}

	// Walk everything under the root's parent (a node the broker created too).
	checked := 0
	var walk func(node string)
	walk = func(node string) {
		checked++
		_, _, err := anon.Get(ctx, node)
		require.NoError(t, err, "the world reads %s", node)
		acl, _, err := anon.GetACL(ctx, node)
		require.NoError(t, err)
		wantOwner := "cluster:x"
		if f.p.Class(node) == coordinator.ClassGroup {
			wantOwner = "billing:x"
		}
		require.Equal(t, zk.ACL{Perms: zk.PermAll, Scheme: "digest", ID: wantOwner}, acl[0], "owner of %s", node)
		_, err = anon.Set(ctx, node, []byte("evil"), -1)
		require.ErrorIs(t, err, zk.ErrNoAuth, "set %s", node)
		if err := anon.Delete(ctx, node, -1); path.Dir(node) == "/" {
			// ZooKeeper's own "/" is open to the world unless the operator
			// restricts it: a top-level node is kept only by its children.
			require.ErrorIs(t, err, zk.ErrNotEmpty, "delete %s", node)
		} else {
			require.ErrorIs(t, err, zk.ErrNoAuth, "delete %s", node)
		}
		_, err = anon.SetACL(ctx, node, zk.WorldACL(zk.PermAll), -1)
		require.ErrorIs(t, err, zk.ErrNoAuth, "setacl %s", node)
		kids, _, err := anon.Children(ctx, node)
		require.NoError(t, err)
		if node != f.p.Consumers() {
			_, err = anon.Create(ctx, node+"/evil", nil, zkrecipes.Ephemeral)
			require.ErrorIs(t, err, zk.ErrNoAuth, "create under %s", node)
		}
		for _, k := range kids {
			walk(path.Join(node, k))
		}
	}
	walk(path.Dir(f.root))
	require.Greater(t, checked, len(seen))
	// The consumers node lets anyone start a group (MetaQ's own clients
	// included), but not touch another's.
	_, err = anon.Create(ctx, f.p.Group("anon-group"), nil, zkrecipes.Persistent)
	require.NoError(t, err)

	require.NoError(t, c.Close(ctx))
	// Offsets reset: not without the group's identity, not with the
	// cluster's, yes with the group's.
	reset := f.args("groups", "reset-offsets", "billing", "--topic", "orders", "--to-earliest", "--execute")
	r := runMetaq(t, reset...)
	require.Error(t, r.err)
	require.Contains(t, r.err.Error(), "not authenticated")
	require.Contains(t, r.err.Error(), "check the ZooKeeper digest credentials")
	r = runMetaq(t, append(reset, "--zk-auth-file", f.clusterFile)...)
	require.Error(t, r.err)
	require.Contains(t, r.err.Error(), `writable only by digest user(s) billing, this session authenticates as "cluster"`)
	mustMetaq(t, append(reset, "--zk-auth-file", f.grpFile)...)
	for p := range 2 {
		raw, _, err := anon.Get(ctx, f.p.GroupOffset("billing", "orders", 1, p))
		require.NoError(t, err)
		require.Equal(t, "-1-0", string(raw))
	}
	// A saved context carries the credentials file (a path, not the secret).
	mustMetaq(t, "context", "save", "zksec-billing", "--zk", f.zk, "--zk-root", f.root, "--zk-auth-file", f.grpFile)
	mustMetaq(t, "--context", "zksec-billing", "groups", "reset-offsets", "billing", "--topic", "orders", "--to-latest", "--execute")
	t.Setenv(zkAuthEnv, "billing:b1lling-Pw")
	mustMetaq(t, reset...) // the credentials from the environment
	t.Setenv(zkAuthEnv, "billing")
	r = runMetaq(t, reset...)
	require.Equal(t, exitUsage, r.code)
	require.ErrorContains(t, r.err, "METAQ_ZK_AUTH: ZooKeeper digest credentials must be user:password")
}

// TestZooKeeperWrongPasswordIsClear: a broker or consumer with the right
// user and a wrong password fails to start with an error that says so
// (and never shows a password).
func TestZooKeeperWrongPasswordIsClear(t *testing.T) {
	f := zkSecSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := brokertest.New(t, brokertest.Options{BrokerID: 2, ZK: f.zk, ZKRoot: f.root,
		Modify: func(o *broker.Options) { o.ZK.DigestUser, o.ZK.DigestPassword = "cluster", "not-the-password" }})
	require.NoError(t, err)
	err = b.Start(ctx)
	require.Error(t, err)
	require.Contains(t, err.Error(), `ZooKeeper refused digest user "cluster"`)
	require.Contains(t, err.Error(), "wrong password")
	require.NotContains(t, err.Error(), "not-the-password")
	require.NotContains(t, err.Error(), zkSecClusterPassword)
	_ = b.Shutdown(ctx)

	good, err := consumer.New("billing", consumer.WithZooKeeper([]string{f.zk}, f.root), consumer.WithZKDigestAuthFile(f.grpFile),
		consumer.WithTopics("orders"))
	require.NoError(t, err)
	require.NoError(t, good.Start(ctx))
	require.NoError(t, good.Close(ctx))
	bad, err := consumer.New("billing", consumer.WithZooKeeper([]string{f.zk}, f.root), consumer.WithZKDigestAuth("billing", "guess"),
		consumer.WithTopics("orders"))
	require.NoError(t, err)
	err = bad.Start(ctx)
	require.ErrorContains(t, err, "wrong password")
	require.NotContains(t, err.Error(), "guess")
	_ = bad.Close(ctx)

	require.NoError(t, os.Chmod(f.grpFile, 0o644))
	r := runMetaq(t, f.args("groups", "list", "--zk-auth-file", f.grpFile)...)
	require.Equal(t, exitUsage, r.code)
	require.ErrorContains(t, r.err, "must not be readable by group or others")
}

// TestZooKeeperReRegistrationKeepsACLs: after the broker's session expires,
// it registers again under a new session with the cluster identity, so its
// new ephemeral nodes are just as protected.
func TestZooKeeperReRegistrationKeepsACLs(t *testing.T) {
	f := zkSecSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	anon := zkSecAnon(t, f.zk)
	_, st, err := anon.Get(ctx, f.p.BrokerMaster(1))
	require.NoError(t, err)
	old := f.b.ZKSession().ID()
	require.NoError(t, zktest.ExpireSession(ctx, f.zk, zktest.Credentials{SessionID: old, Password: f.b.ZKSession().Password()}))
	opsEventually(t, "re-registration under a new session", func() bool {
		_, st2, err := anon.Get(ctx, f.p.TopicPub("orders", 1))
		return err == nil && st2.EphemeralOwner != old && st2.EphemeralOwner != 0
	})
	require.NotEqual(t, st.EphemeralOwner, f.b.ZKSession().ID())
	for _, node := range []string{f.p.BrokerMaster(1), f.p.TopicPub("orders", 1), f.p.BrokerAccepts(1)} {
		acl, _, err := anon.GetACL(ctx, node)
		require.NoError(t, err)
		require.Equal(t, "cluster:x", acl[0].ID, node)
		require.ErrorIs(t, anon.Delete(ctx, node, -1), zk.ErrNoAuth, node)
	}
}

// TestStatsConfigRedactsSecrets: `stats config` and the checksum node never
// carry zk.zkAuth's password.
func TestStatsConfigRedactsSecrets(t *testing.T) {
	f := zkSecSetup(t)
	cl := brokertest.Dial(t, f.b.Addr())
	cl.Send(t, "stats config 1\r\n")
	line, body := cl.ReadReply(t)
	require.True(t, strings.HasPrefix(line, "result 200 "), line)
	require.NotContains(t, string(body), zkSecClusterPassword)
	require.Contains(t, string(body), "zk.zkAuth=<redacted>")
	anon := zkSecAnon(t, f.zk)
	sum, _, err := anon.Get(context.Background(), f.p.BrokerConfigChecksum(1))
	require.NoError(t, err)
	require.Equal(t, fmt.Sprint(crc32.ChecksumIEEE(body)), string(sum), "the checksum is of the redacted text")
}
