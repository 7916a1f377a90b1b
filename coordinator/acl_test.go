package coordinator_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// aclMatrix is the class of every node kind paths.go builds: the ACL matrix
// of docs/security-zookeeper.md. A method added to Paths without a row here
// fails TestEveryNodeKindHasItsACL: decide its ACL, then add it to both.
var aclMatrix = map[string]coordinator.NodeClass{
	"Brokers": coordinator.ClassCluster, "BrokerIDs": coordinator.ClassCluster, "BrokerID": coordinator.ClassCluster,
	"BrokerMaster": coordinator.ClassCluster, "BrokerConfigChecksum": coordinator.ClassCluster,
	"BrokerSlave":  coordinator.ClassCluster,
	"TopicsLegacy": coordinator.ClassCluster, "TopicsPub": coordinator.ClassCluster, "TopicsSub": coordinator.ClassCluster,
	"TopicLegacyDir": coordinator.ClassCluster, "TopicPubDir": coordinator.ClassCluster, "TopicSubDir": coordinator.ClassCluster,
	"TopicLegacy": coordinator.ClassCluster, "TopicPub": coordinator.ClassCluster, "TopicSub": coordinator.ClassCluster,
	"BrokerAcceptsDir": coordinator.ClassCluster, "BrokerAccepts": coordinator.ClassCluster,
	"MetaQRoot": coordinator.ClassCluster, "ReplicationRoot": coordinator.ClassCluster, "Replication": coordinator.ClassCluster,
	"ReplicationEpoch": coordinator.ClassCluster, "ReplicationISR": coordinator.ClassCluster,
	"ReplicationElection": coordinator.ClassCluster, "ReplicationPromote": coordinator.ClassCluster,
	"Consumers": coordinator.ClassConsumers,
	"Group":     coordinator.ClassGroup, "GroupMetaQIDs": coordinator.ClassGroup, "GroupMembers": coordinator.ClassGroup,
	"GroupAssign": coordinator.ClassGroup, "GroupMemberAssign": coordinator.ClassGroup,
	"GroupOwnersRoot": coordinator.ClassGroup, "GroupOwners": coordinator.ClassGroup, "GroupOwner": coordinator.ClassGroup,
	"GroupFences": coordinator.ClassGroup, "GroupOffsetsRoot": coordinator.ClassGroup, "GroupOffsets": coordinator.ClassGroup,
	"GroupOffset": coordinator.ClassGroup,
}

// nodeKinds calls every string-returning method of Paths (node kinds) with
// sample arguments and returns method name -> path.
func nodeKinds(t *testing.T, p coordinator.Paths) map[string]string {
	t.Helper()
	out := map[string]string{}
	v := reflect.ValueOf(p)
	for i := 0; i < v.NumMethod(); i++ {
		m := v.Type().Method(i)
		mt := v.Method(i).Type()
		if mt.NumOut() != 1 || mt.Out(0).Kind() != reflect.String {
			continue
		}
		args := make([]reflect.Value, mt.NumIn())
		for j := range args {
			switch mt.In(j).Kind() {
			case reflect.Int:
				args[j] = reflect.ValueOf(1)
			case reflect.String:
				args[j] = reflect.ValueOf("x")
			default:
				t.Fatalf("Paths.%s takes a %s: teach nodeKinds a sample value", m.Name, mt.In(j))
			}
		}
		out[m.Name] = v.Method(i).Call(args)[0].String()
	}
	return out
}

func aclCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// identity connects a session authenticated as user in role r.
func identity(t *testing.T, addr string, p coordinator.Paths, user string, r coordinator.ACLRole) *zkrecipes.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := zkrecipes.Connect(ctx, []string{addr}, append([]zkrecipes.Option{zkrecipes.WithSessionTimeout(4 * time.Second)},
		p.SessionOptions(user, user+"-password", r)...)...)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

// TestEveryNodeKindHasItsACL creates every node kind of paths.go the way
// its owner does (the cluster identity, or the group identity for group
// nodes) and shows that an unauthenticated client can read each one but can
// neither change, delete, create under (except a group under the consumers
// node) nor re-ACL it, while the owner can.
func TestEveryNodeKindHasItsACL(t *testing.T) {
	addr := zktest.Shared(t).Addr
	p := coordinator.NewPaths(uniqueRoot(t))
	kinds := nodeKinds(t, p)
	for name := range kinds {
		if _, ok := aclMatrix[name]; !ok {
			t.Errorf("Paths.%s is a node kind without a row in the ACL matrix: decide its ACL (coordinator/acl.go), "+
				"add it to aclMatrix and docs/security-zookeeper.md", name)
		}
	}
	for name := range aclMatrix {
		if _, ok := kinds[name]; !ok {
			t.Errorf("aclMatrix has %s, which Paths no longer builds", name)
		}
	}
	ctx := aclCtx(t)
	cluster := identity(t, addr, p, "cluster", coordinator.RoleCluster)
	group := identity(t, addr, p, "billing", coordinator.RoleGroup)
	anon := connect(t, addr)
	require.NoError(t, cluster.EnsurePath(ctx, p.Consumers()))

	for name, node := range kinds {
		want := aclMatrix[name]
		require.Equal(t, want, p.Class(node), "class of %s (%s)", name, node)
		owner := cluster
		if want == coordinator.ClassGroup {
			owner = group
		}
		_, err := owner.CreateParents(ctx, node, []byte("v"), zkrecipes.Persistent)
		if err != nil && !zkErrIs(err, zk.ErrNodeExists) {
			t.Fatalf("%s: create %s as its owner: %v", name, node, err)
		}
	}
	kinds["(root)"] = p.Root
	for name, node := range kinds {
		class := p.Class(node)
		data, _, err := anon.Get(ctx, node)
		require.NoError(t, err, "%s: the world reads %s", name, node)
		_, err = anon.Set(ctx, node, []byte("evil"), -1)
		require.ErrorIs(t, err, zk.ErrNoAuth, "%s: set %s", name, node)
		require.ErrorIs(t, anon.Delete(ctx, node, -1), zk.ErrNoAuth, "%s: delete %s", name, node)
		_, err = anon.SetACL(ctx, node, zk.WorldACL(zk.PermAll), -1)
		require.ErrorIs(t, err, zk.ErrNoAuth, "%s: setacl %s", name, node)
		_, err = anon.Create(ctx, node+"/evil", nil, zkrecipes.Persistent)
		if class == coordinator.ClassConsumers {
			require.NoError(t, err, "%s: anyone may create a group under %s", name, node)
		} else {
			require.ErrorIs(t, err, zk.ErrNoAuth, "%s: create under %s", name, node)
		}

		owner := cluster
		if class == coordinator.ClassGroup {
			owner = group
		}
		_, err = owner.Set(ctx, node, data, -1)
		require.NoError(t, err, "%s: its owner writes %s", name, node)
		acl, _, err := owner.GetACL(ctx, node)
		require.NoError(t, err)
		_, id := owner.DigestIdentity()
		require.Equal(t, zk.ACL{Perms: zk.PermAll, Scheme: "digest", ID: id}, acl[0], "%s: %s", name, node)
		if class != coordinator.ClassGroup {
			_, err = group.Set(ctx, node, data, -1)
			require.ErrorIs(t, err, zk.ErrNoAuth, "%s: a group identity must not write cluster node %s", name, node)
		}
	}
}

func zkErrIs(err, target error) bool { return errors.Is(err, target) }

// TestGroupIdentityNeverCreatesClusterNodes: a consumer started before any
// broker must not create the root or the consumers node (it would own them
// and lock the brokers out); it gets a clear error instead.
func TestGroupIdentityNeverCreatesClusterNodes(t *testing.T) {
	addr := zktest.Shared(t).Addr
	p := coordinator.NewPaths(uniqueRoot(t))
	ctx := aclCtx(t)
	group := identity(t, addr, p, "billing", coordinator.RoleGroup)
	err := group.EnsurePath(ctx, p.GroupMembers("billing"))
	require.ErrorIs(t, err, coordinator.ErrClusterNode)
	require.ErrorContains(t, err, "start a broker")
	ok, _, err := group.Exists(ctx, p.Root)
	require.NoError(t, err)
	require.False(t, ok)

	cluster := identity(t, addr, p, "cluster", coordinator.RoleCluster)
	_, err = coordinator.SecureCluster(ctx, cluster, p) // creates the consumers node
	require.NoError(t, err)
	require.NoError(t, group.EnsurePath(ctx, p.GroupMembers("billing")))
}

// TestCheckIdentityNamesWrongPassword: a wrong password is reported as such
// (never with the password), another user by name, the right one passes.
func TestCheckIdentityNamesWrongPassword(t *testing.T) {
	addr := zktest.Shared(t).Addr
	p := coordinator.NewPaths(uniqueRoot(t))
	ctx := aclCtx(t)
	owner := identity(t, addr, p, "cluster", coordinator.RoleCluster)
	require.NoError(t, owner.EnsurePath(ctx, p.Consumers()))
	require.NoError(t, coordinator.CheckIdentity(ctx, owner, p.Root))

	conn := func(user, password string) *zkrecipes.Session {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s, err := zkrecipes.Connect(ctx, []string{addr}, p.SessionOptions(user, password, coordinator.RoleCluster)...)
		require.NoError(t, err)
		t.Cleanup(s.Close)
		return s
	}
	err := coordinator.CheckIdentity(ctx, conn("cluster", "wrong-pw"), p.Root)
	require.ErrorContains(t, err, `digest user "cluster"`)
	require.ErrorContains(t, err, "wrong password")
	require.NotContains(t, err.Error(), "wrong-pw")
	err = coordinator.CheckIdentity(ctx, conn("mallory", "x"), p.Root)
	require.ErrorContains(t, err, "writable only by digest user(s) cluster")
	require.NoError(t, coordinator.CheckIdentity(ctx, connect(t, addr), p.Root), "no identity: nothing to check")
	require.NoError(t, coordinator.CheckIdentity(ctx, owner, p.Root+"/missing"))
}

// TestSecureClusterTightensWorldNodes: nodes a cluster created before it had
// an identity (world ACL) are restricted by SecureCluster; groups are left
// to their own identity (Secure with the group's session).
func TestSecureClusterTightensWorldNodes(t *testing.T) {
	addr := zktest.Shared(t).Addr
	p := coordinator.NewPaths(uniqueRoot(t))
	ctx := aclCtx(t)
	anon := connect(t, addr)
	legacy := []string{p.BrokerMaster(1), p.TopicPub("orders", 1), p.ReplicationEpoch(1), p.GroupOffset("billing", "orders", 1, 0)}
	for _, n := range legacy {
		_, err := anon.CreateParents(ctx, n, []byte("v"), zkrecipes.Persistent)
		require.NoError(t, err)
	}
	// A node whose world ACL lacks ADMIN cannot be re-ACLed by anyone but
	// the super user: skipped, not an error that stops a broker's start.
	_, err := anon.Conn().Create(p.TopicPub("orders", 2), nil, 0, zk.WorldACL(zk.PermRead|zk.PermWrite))
	require.NoError(t, err)
	cluster := identity(t, addr, p, "cluster", coordinator.RoleCluster)
	// Two brokers securing the same tree at once both succeed.
	other := identity(t, addr, p, "cluster", coordinator.RoleCluster)
	otherDone := make(chan error, 1)
	go func() { _, err := coordinator.SecureCluster(ctx, other, p); otherDone <- err }()
	n, err := coordinator.SecureCluster(ctx, cluster, p)
	require.NoError(t, err)
	require.NoError(t, <-otherDone)
	n2, err := coordinator.SecureCluster(ctx, other, p)
	require.NoError(t, err)
	require.Zero(t, n2)
	require.LessOrEqual(t, n, 13, "root, brokers, ids, 1, master, topics-pub, orders, 1-m, metaq, replication, 1, epoch, consumers")
	for _, node := range legacy[:3] {
		_, err := anon.Set(ctx, node, nil, -1)
		require.ErrorIs(t, err, zk.ErrNoAuth, node)
	}
	acl, _, err := anon.GetACL(ctx, p.Consumers())
	require.NoError(t, err)
	require.Contains(t, acl, zk.ACL{Perms: zk.PermRead | zk.PermCreate, Scheme: "world", ID: "anyone"})
	_, err = anon.Set(ctx, p.GroupOffset("billing", "orders", 1, 0), nil, -1)
	require.NoError(t, err, "a group's nodes are its identity's to secure")

	group := identity(t, addr, p, "billing", coordinator.RoleGroup)
	n, err = coordinator.Secure(ctx, group, p, p.Group("billing"), true)
	require.NoError(t, err)
	require.Equal(t, 4, n, "billing, offsets, orders, 1-0")
	_, err = anon.Set(ctx, p.GroupOffset("billing", "orders", 1, 0), nil, -1)
	require.ErrorIs(t, err, zk.ErrNoAuth)
	again, err := coordinator.SecureCluster(ctx, cluster, p)
	require.NoError(t, err)
	require.Zero(t, again, "idempotent")
}
