package broker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/security"
	"github.com/metaq-go/metaq/protocol"
)

func TestFailureDelayGrowsPerAddressAndIsCapped(t *testing.T) {
	ft := newFailureTracker(100*time.Millisecond, time.Second)
	now := time.Unix(1000, 0)
	var got []time.Duration
	for i := 0; i < 6; i++ {
		d, n := ft.fail("10.0.0.1", now)
		require.Equal(t, i+1, n)
		got = append(got, d)
	}
	require.Equal(t, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, time.Second, time.Second}, got)
	d, n := ft.fail("10.0.0.2", now)
	require.Equal(t, 100*time.Millisecond, d, "another address starts afresh")
	require.Equal(t, 1, n)
	d, n = ft.fail("10.0.0.1", now.Add(2*time.Minute))
	require.Equal(t, 100*time.Millisecond, d, "old failures are forgotten")
	require.Equal(t, 1, n)
	none := newFailureTracker(-1, 0)
	d, _ = none.fail("10.0.0.1", now)
	require.Zero(t, d)
}

func TestPrincipalPrecedenceAndOwnership(t *testing.T) {
	authz, err := security.ParseACL("acl.yaml", []byte("- {principal: root, operations: [admin]}\n"))
	require.NoError(t, err)
	ws := &wireSecurity{anonymous: true}
	ws.files.Store(&securityFiles{authz: authz})
	b := &Broker{sec: ws}
	cn := &conn{b: b}
	require.Equal(t, security.AnonymousPrincipal, cn.who(), "anonymous when allowed")
	cn.tlsPrincipal = "ops"
	require.Equal(t, "ops", cn.who(), "a verified client certificate's CN")
	cn.principal = "alice"
	require.Equal(t, "alice", cn.who(), "auth wins over the certificate")
	ws.anonymous = false
	require.Equal(t, "", (&conn{b: b}).who(), "no principal: 401")

	owned, legacy := &tx{principal: "alice"}, &tx{}
	require.True(t, cn.mayUse(owned))
	require.False(t, cn.mayUse(legacy), "a transaction without an owner is an admin's only")
	bob := &conn{b: b, principal: "bob"}
	require.False(t, bob.mayUse(owned))
	root := &conn{b: b, tlsPrincipal: "root"}
	require.True(t, root.mayUse(owned))
	require.True(t, root.mayUse(legacy))
	var operator *conn
	require.True(t, operator.mayUse(owned), "the operator API sees everything")
	off := &conn{b: &Broker{}}
	require.True(t, off.mayUse(owned), "security off: no ownership")
	require.True(t, (&Broker{}).IsAdmin("anyone"))
	require.True(t, b.IsAdmin("root"))
	require.False(t, b.IsAdmin("alice"))
}

func TestRequiredForCoversEveryVerb(t *testing.T) {
	for _, tc := range []struct {
		req  protocol.Request
		want []check
	}{
		{&protocol.PutRequest{Topic: "t"}, []check{{op: security.OpPut, topic: "t"}}},
		{&protocol.PutRequest{Topic: "t", TxKey: "TX:s:1"}, []check{{op: security.OpPut, topic: "t"}, {op: security.OpTransaction}}},
		{&protocol.GetRequest{Topic: "t", Group: "g"}, []check{{op: security.OpGet, topic: "t", group: "g"}}},
		{&protocol.OffsetRequest{Topic: "t", Group: "g"}, []check{{op: security.OpOffset, topic: "t", group: "g"}}},
		{&protocol.StatsRequest{Item: ""}, []check{{op: security.OpStats}}},
		{&protocol.StatsRequest{Item: "config"}, []check{{op: security.OpAdmin}}},
		{&protocol.StatsRequest{Item: "reset"}, []check{{op: security.OpAdmin}}},
		{&protocol.TransactionRequest{Type: protocol.TxRecover}, []check{{op: security.OpTransaction}}},
		{&protocol.ReplicateRequest{}, []check{{op: security.OpAdmin}}},
		{&protocol.SyncRequest{}, []check{{op: security.OpAdmin}}},
	} {
		require.Equal(t, tc.want, requiredFor(tc.req, false), "%T %+v", tc.req, tc.req)
	}
	require.Empty(t, requiredFor(&protocol.GetRequest{Topic: "t", Group: "__replica"}, true), "a follower's stream was authorised by replicate")
}
