package broker_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/xdg-go/scram"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/internal/security"
	"github.com/metaq-go/metaq/protocol"
)

// The ACL of the security tests: alice and bob produce and consume
// orders* as billing; carol may only use the topic public; root is admin.
const testACL = `
- {principal: alice, operations: [put, get, offset, transaction, stats], topics: ["orders*"], groups: ["billing"]}
- {principal: bob, operations: [put, get, offset, transaction, stats], topics: ["orders*"], groups: ["billing"]}
- {principal: carol, operations: [put, get], topics: ["public"], groups: ["g"]}
- {principal: root, operations: [admin]}
`

var testPasswords = map[string]string{"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "root": "root-pw"}

// securityFiles writes the users and ACL files of the tests into dir.
func securityFiles(t testing.TB, dir string) broker.SecurityOptions {
	t.Helper()
	u := security.NewUsers()
	for name, pw := range testPasswords {
		c, err := security.NewCredentials(name, pw)
		require.NoError(t, err)
		require.NoError(t, u.Set(name, c))
	}
	o := broker.SecurityOptions{UsersFile: filepath.Join(dir, "users.yaml"), ACLFile: filepath.Join(dir, "acl.yaml"),
		FailureDelay: time.Millisecond, MaxFailureDelay: 2 * time.Millisecond}
	require.NoError(t, u.Save(o.UsersFile))
	require.NoError(t, os.WriteFile(o.ACLFile, []byte(testACL), 0o600))
	return o
}

func startSecure(t testing.TB, dataDir string, sec broker.SecurityOptions) *broker.Broker {
	t.Helper()
	return brokertest.Start(t, brokertest.Options{DataDir: dataDir, Partitions: 1, Modify: func(o *broker.Options) { o.Security = sec }})
}

func plainLine(user, password string, opaque int) string {
	return string(protocol.AppendAuth(nil, protocol.MechPlain, []byte("\x00"+user+"\x00"+password), int32(opaque)))
}

// login authenticates c with PLAIN and checks the 200.
func login(t testing.TB, c *brokertest.Client, user string) {
	t.Helper()
	c.Send(t, plainLine(user, testPasswords[user], 900))
	expectReply(t, c, protocol.CodeOK, 900)
}

// scramLogin runs a SCRAM-SHA-256 exchange with xdg-go/scram's client and
// returns the final reply (the server-final is verified on success).
func scramLogin(t testing.TB, c *brokertest.Client, user, password string) reply {
	t.Helper()
	cl, err := scram.SHA256.NewClient(user, password, "")
	require.NoError(t, err)
	conv := cl.NewConversation()
	first, err := conv.Step("")
	require.NoError(t, err)
	c.Send(t, string(protocol.AppendAuth(nil, protocol.MechSCRAMSHA256, []byte(first), 1)))
	r := expectReply(t, c, protocol.CodeContinue, 1)
	serverFirst, err := base64.StdEncoding.DecodeString(string(r.body))
	require.NoError(t, err)
	final, err := conv.Step(string(serverFirst))
	require.NoError(t, err)
	c.Send(t, string(protocol.AppendAuth(nil, protocol.MechSCRAMSHA256, []byte(final), 2)))
	r, closed, err := readOne(c, 10*time.Second)
	require.NoError(t, err)
	require.False(t, closed)
	if r.code == protocol.CodeOK {
		serverFinal, err := base64.StdEncoding.DecodeString(string(r.body))
		require.NoError(t, err)
		_, err = conv.Step(string(serverFinal))
		require.NoError(t, err, "the client verifies the server's signature")
		require.True(t, conv.Valid())
	}
	return r
}

// operation is one request of the protocol, with what an authorised
// principal gets.
type operation struct {
	name string
	line func(op int) string
}

// everyOperation lists every verb and transaction type on the topic
// orders (group billing).
func everyOperation() []operation {
	xid := "XID:1:0a:0b:q"
	tx := func(typ string) func(int) string { return func(op int) string { return txLine(xid, typ, op) } }
	return []operation{
		{"put", func(op int) string { return putLine("orders", 0, "refused body", op) }},
		{"transactional put", func(op int) string { return txPutLine("orders", 0, "refused tx body", xid, op) }},
		{"get", func(op int) string { return fmt.Sprintf("get orders billing 0 0 1024 %d\r\n", op) }},
		{"offset", func(op int) string { return fmt.Sprintf("offset orders billing 0 0 %d\r\n", op) }},
		{"stats", func(op int) string { return fmt.Sprintf("stats topics %d\r\n", op) }},
		{"stats config", func(op int) string { return fmt.Sprintf("stats config %d\r\n", op) }},
		{"stats replication", func(op int) string { return fmt.Sprintf("stats replication %d\r\n", op) }},
		{"transaction begin", tx("BEGIN")},
		{"transaction prepare", tx("PREPARE")},
		{"transaction commit one phase", tx("COMMIT_ONE_PHASE")},
		{"transaction commit two phase", tx("COMMIT_TWO_PHASE")},
		{"transaction rollback", tx("ROLLBACK")},
		{"transaction recover", tx("RECOVER")},
		{"transaction end", tx("END")},
		{"transaction forget", tx("FORGET")},
		{"replicate", func(op int) string { return fmt.Sprintf("replicate 0 1 sync 0 %d\r\n", op) }},
	}
}

// TestEveryOperationIsRefusedToUnauthenticatedWronglyAuthenticatedAndUnauthorisedPrincipals
// tries every request on one connection per kind of client: each is
// refused with the documented code, and the connection stays usable (an
// allowed request follows every refusal; the put bodies were consumed).
func TestEveryOperationIsRefusedToUnauthenticatedWronglyAuthenticatedAndUnauthorisedPrincipals(t *testing.T) {
	dir := t.TempDir()
	b := startSecure(t, filepath.Join(dir, "data"), securityFiles(t, dir))
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, c *brokertest.Client)
		code    int32
		reason  string
		allowed func(op int) string // a request this client may send
	}{
		{"unauthenticated", func(*testing.T, *brokertest.Client) {}, protocol.CodeUnauthorized, "authentication required",
			func(op int) string { return fmt.Sprintf("version %d\r\n", op) }},
		{"wrong password", func(t *testing.T, c *brokertest.Client) {
			c.Send(t, plainLine("alice", "not-her-password", 800))
			r := expectReply(t, c, protocol.CodeUnauthorized, 800)
			require.Equal(t, security.ErrAuthFailed.Error(), string(r.body))
		}, protocol.CodeUnauthorized, "authentication required",
			func(op int) string { return fmt.Sprintf("version %d\r\n", op) }},
		{"unknown user over SCRAM", func(t *testing.T, c *brokertest.Client) {
			r := scramLogin(t, c, "mallory", "guess")
			require.Equal(t, int32(protocol.CodeUnauthorized), r.code)
			require.Equal(t, security.ErrAuthFailed.Error(), string(r.body))
		}, protocol.CodeUnauthorized, "authentication required",
			func(op int) string { return fmt.Sprintf("version %d\r\n", op) }},
		{"unauthorised", func(t *testing.T, c *brokertest.Client) { login(t, c, "carol") }, protocol.CodeForbidden, `principal "carol" may not perform`,
			func(op int) string { return putLine("public", 0, "ok", op) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := brokertest.Dial(t, b.Addr())
			tc.setup(t, c)
			op := 1
			for _, o := range everyOperation() {
				c.Send(t, o.line(op))
				r := expectReply(t, c, tc.code, int32(op))
				require.Contains(t, string(r.body), tc.reason, o.name)
				op++
				c.Send(t, tc.allowed(op))
				r = expectReply(t, c, protocol.CodeOK, int32(op))
				op++
			}
			// The same connection authenticates and works.
			login(t, c, "alice")
			c.Send(t, putLine("orders", 0, "after refusals", op))
			expectReply(t, c, protocol.CodeOK, int32(op))
		})
	}
	// The broker stayed up: a new connection is served.
	c := brokertest.Dial(t, b.Addr())
	require.Equal(t, int32(protocol.CodeOK), scramLogin(t, c, "bob", "bob-pw").code)
	c.Send(t, "get orders billing 0 0 65536 3\r\n")
	r := expectReply(t, c, protocol.CodeOK, 3)
	require.True(t, r.value)
	require.Len(t, messages(t, r.body), 4, "one put after each kind of refused client")
}

// TestAuthorisedPrincipalsSucceed runs the same operations as their
// authorised principals: none is refused by the ACL.
func TestAuthorisedPrincipalsSucceed(t *testing.T) {
	dir := t.TempDir()
	b := startSecure(t, filepath.Join(dir, "data"), securityFiles(t, dir))
	alice := brokertest.Dial(t, b.Addr())
	require.Equal(t, int32(protocol.CodeOK), scramLogin(t, alice, "alice", "alice-pw").code)
	requireOK(t, txCall(t, alice, putLine("orders", 0, "m1", 10), 10))
	alice.Send(t, "get orders billing 0 0 1024 11\r\n")
	require.True(t, expectReply(t, alice, protocol.CodeOK, 11).value)
	requireOK(t, txCall(t, alice, "offset orders billing 0 0 12\r\n", 12))
	requireOK(t, txCall(t, alice, "stats topics 13\r\n", 13))
	x := "XID:1:0a:0c:q"
	requireOK(t, txCall(t, alice, txLine(x, "BEGIN", 14), 14))
	requireOK(t, txCall(t, alice, txPutLine("orders", 0, "tx", x, 15), 15))
	alice.Send(t, txLine(x, "END", 16)) // no reply
	requireOK(t, txCall(t, alice, txLine(x, "PREPARE", 17), 17))
	r := txCall(t, alice, txLine(x, "RECOVER", 18), 18)
	requireOK(t, r)
	require.Equal(t, x, string(r.body))
	requireOK(t, txCall(t, alice, txLine(x, "COMMIT_TWO_PHASE", 19), 19))
	y := "XID:1:0a:0d:q"
	requireOK(t, txCall(t, alice, txLine(y, "BEGIN", 20), 20))
	requireOK(t, txCall(t, alice, txLine(y, "ROLLBACK", 21), 21))
	// alice may not read the configuration; root may.
	alice.Send(t, "stats config 22\r\n")
	expectReply(t, alice, protocol.CodeForbidden, 22)
	root := brokertest.Dial(t, b.Addr())
	login(t, root, "root")
	r = txCall(t, root, "stats config 1\r\n", 1)
	requireOK(t, r)
	require.Contains(t, string(r.body), "brokerId")
	r = txCall(t, root, "replicate 0 1 sync 0 2\r\n", 2)
	require.NotContains(t, string(r.body), "may not perform", "root passes the ACL (the broker itself answers: it has no replication)")
}

// TestAnotherPrincipalCannotFinishOrListAPreparedTransaction: bob gets
// XAER_NOTA for alice's prepared XA transaction and RECOVER does not list
// it, before and after a broker restart; root (admin) sees it; alice
// commits it.
func TestAnotherPrincipalCannotFinishOrListAPreparedTransaction(t *testing.T) {
	dir := t.TempDir()
	sec, data := securityFiles(t, dir), filepath.Join(dir, "data")
	b := startSecure(t, data, sec)
	x := "XID:9:0a:0b:q"
	alice := brokertest.Dial(t, b.Addr())
	login(t, alice, "alice")
	requireOK(t, txCall(t, alice, txLine(x, "BEGIN", 1), 1))
	requireOK(t, txCall(t, alice, txPutLine("orders", 0, "alice's", x, 2), 2))
	requireOK(t, txCall(t, alice, txLine(x, "PREPARE", 3), 3))

	bobCannot := func(addr string) {
		bob := brokertest.Dial(t, addr)
		login(t, bob, "bob")
		requireXA(t, txCall(t, bob, txPutLine("orders", 0, "bob's", x, 1), 1), protocol.XAErrNOTA)
		requireXA(t, txCall(t, bob, txLine(x, "COMMIT_TWO_PHASE", 2), 2), protocol.XAErrNOTA)
		requireXA(t, txCall(t, bob, txLine(x, "COMMIT_ONE_PHASE", 3), 3), protocol.XAErrNOTA)
		requireXA(t, txCall(t, bob, txLine(x, "ROLLBACK", 4), 4), protocol.XAErrNOTA)
		requireXA(t, txCall(t, bob, txLine(x, "PREPARE", 5), 5), protocol.XAErrNOTA)
		requireXA(t, txCall(t, bob, txLine(x, "FORGET", 6), 6), protocol.XAErrNOTA)
		bob.Send(t, txLine(x, "END", 7)) // no reply, no effect
		r := txCall(t, bob, txLine(x, "RECOVER", 8), 8)
		requireOK(t, r)
		require.Empty(t, string(r.body), "bob's RECOVER does not list alice's transaction")
		root := brokertest.Dial(t, addr)
		login(t, root, "root")
		r = txCall(t, root, txLine(x, "RECOVER", 1), 1)
		requireOK(t, r)
		require.Equal(t, x, string(r.body), "an admin sees every transaction")
	}
	bobCannot(b.Addr())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, b.Shutdown(ctx))
	b = startSecure(t, data, sec)
	bobCannot(b.Addr())

	alice = brokertest.Dial(t, b.Addr())
	login(t, alice, "alice")
	r := txCall(t, alice, txLine(x, "RECOVER", 1), 1)
	requireOK(t, r)
	require.Equal(t, x, string(r.body))
	requireOK(t, txCall(t, alice, txLine(x, "COMMIT_TWO_PHASE", 2), 2))
	alice.Send(t, "get orders billing 0 0 65536 3\r\n")
	r = expectReply(t, alice, protocol.CodeOK, 3)
	require.True(t, r.value)
	msgs := messages(t, r.body)
	require.Len(t, msgs, 1)
	require.Equal(t, "alice's", string(msgs[0].Data))
}

// TestSCRAMWrongPasswordGetsTheGenericReason: a wrong password over
// SCRAM fails with the same reason as an unknown user, and the connection
// can then authenticate.
func TestSCRAMWrongPasswordGetsTheGenericReason(t *testing.T) {
	dir := t.TempDir()
	b := startSecure(t, filepath.Join(dir, "data"), securityFiles(t, dir))
	c := brokertest.Dial(t, b.Addr())
	r := scramLogin(t, c, "alice", "wrong")
	require.Equal(t, int32(protocol.CodeUnauthorized), r.code)
	require.Equal(t, security.ErrAuthFailed.Error(), string(r.body))
	c.Send(t, "stats topics 5\r\n")
	expectReply(t, c, protocol.CodeUnauthorized, 5)
	require.Equal(t, int32(protocol.CodeOK), scramLogin(t, c, "alice", "alice-pw").code)
	requireOK(t, txCall(t, c, "stats topics 6\r\n", 6))
	// PLAIN with another authorization identity is refused the same way.
	c.Send(t, string(protocol.AppendAuth(nil, protocol.MechPlain, []byte("root\x00alice\x00alice-pw"), 7)))
	r = expectReply(t, c, protocol.CodeUnauthorized, 7)
	require.Equal(t, security.ErrAuthFailed.Error(), string(r.body))
	c.Send(t, "auth GSSAPI = 8\r\n")
	r = expectReply(t, c, protocol.CodeUnauthorized, 8)
	require.Contains(t, string(r.body), "SCRAM-SHA-256")
}

// TestFailedAuthReplyIsDelayedOffTheEventLoop: while a failed attempt's
// reply is held, other connections (on the same event loop) are served,
// including a successful login from the same address.
func TestFailedAuthReplyIsDelayedOffTheEventLoop(t *testing.T) {
	dir := t.TempDir()
	sec := securityFiles(t, dir)
	sec.FailureDelay, sec.MaxFailureDelay = time.Hour, time.Hour // held until shutdown
	b := startSecure(t, filepath.Join(dir, "data"), sec)
	bad := brokertest.Dial(t, b.Addr())
	bad.Send(t, plainLine("alice", "wrong", 1))
	bad.Send(t, "version 2\r\n") // pipelined: waits behind the held failure
	good := brokertest.Dial(t, b.Addr())
	good.Send(t, "version 1\r\n")
	expectReply(t, good, protocol.CodeOK, 1)
	login(t, good, "alice")
	requireOK(t, txCall(t, good, putLine("orders", 0, "m", 3), 3))
	_, _, err := bad.TryReadReply(100 * time.Millisecond)
	require.Error(t, err, "the failed attempt's reply is still held")
}

// TestAnonymousPrincipal: with allowAnonymous, unauthenticated clients
// act as "anonymous" and the ACL decides what they may do.
func TestAnonymousPrincipal(t *testing.T) {
	dir := t.TempDir()
	sec := securityFiles(t, dir)
	sec.Anonymous = broker.AnonymousAllowed
	require.NoError(t, os.WriteFile(sec.ACLFile, []byte(testACL+"- {principal: anonymous, operations: [get], topics: [\"public\"], groups: [\"*\"]}\n"), 0o600))
	b := startSecure(t, filepath.Join(dir, "data"), sec)
	c := brokertest.Dial(t, b.Addr())
	c.Send(t, "get public any 0 0 1024 1\r\n")
	expectReply(t, c, protocol.CodeNotFound, 1) // allowed: nothing there yet
	c.Send(t, putLine("public", 0, "x", 2))
	r := expectReply(t, c, protocol.CodeForbidden, 2)
	require.Contains(t, string(r.body), `principal "anonymous" may not perform put on topic public`)
}

// TestSecurityOffKeepsMetaQBehaviour: without [security] nothing is
// checked and auth is refused with a clear reason.
func TestSecurityOffKeepsMetaQBehaviour(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	c := brokertest.Dial(t, b.Addr())
	requireOK(t, txCall(t, c, "stats config 1\r\n", 1))
	c.Send(t, plainLine("alice", "pw", 2))
	r := expectReply(t, c, protocol.CodeUnauthorized, 2)
	require.Contains(t, string(r.body), "usersFile")
	requireOK(t, txCall(t, c, putLine("orders", 0, "m", 3), 3))
}

func TestBadSecurityFilesStopTheBroker(t *testing.T) {
	dir := t.TempDir()
	sec := securityFiles(t, dir)
	require.NoError(t, os.WriteFile(sec.ACLFile, []byte("- {principal: alice, operations: [write]}\n"), 0o600))
	_, err := brokertest.New(t, brokertest.Options{Modify: func(o *broker.Options) { o.Security = sec }})
	require.ErrorIs(t, err, security.ErrBadACLFile)
	require.Contains(t, err.Error(), "aclFile")
	require.Contains(t, err.Error(), `operation "write" is unknown`)
	sec.UsersFile = filepath.Join(dir, "missing.yaml")
	_, err = brokertest.New(t, brokertest.Options{Modify: func(o *broker.Options) { o.Security = sec }})
	require.ErrorIs(t, err, security.ErrBadUsersFile)
	require.True(t, strings.Contains(err.Error(), "metaq users add"), err.Error())
}
