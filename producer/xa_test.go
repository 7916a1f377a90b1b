package producer_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/producer"
)

func TestXAFullCycleSurvivesBrokerRestart(t *testing.T) {
	r := newRestartable(t)
	p := directProducer(t, r.addr, 2, producer.WithRetry(10*time.Millisecond, 20))
	ctx := testCtx(t, 60*time.Second)
	xa, err := p.XAResource(ctx, producer.XAOptions{Broker: r.addr, Name: "rm-1", Timeout: 30 * time.Second})
	require.NoError(t, err)
	require.Equal(t, "rm-1", xa.Name())

	commitX := producer.XID{FormatID: 7, GlobalID: []byte{0xAB, 0x01}, BranchQualifier: []byte("b1")}
	rollX := producer.XID{FormatID: 7, GlobalID: []byte{0xAB, 0x02}, BranchQualifier: []byte("b1")}
	roX := producer.XID{FormatID: 7, GlobalID: []byte{0xAB, 0x03}}
	require.Equal(t, "XID:7:ab01:6231:rm-1", xa.Key(commitX), "lower-case hex, the resource's name as qualifier")

	for _, x := range []producer.XID{commitX, rollX, roX} {
		require.NoError(t, xa.Start(ctx, x))
	}
	require.ErrorIs(t, xa.Start(ctx, commitX), producer.XAErrDupID)
	for i, d := range []string{"x0", "x1", "x2"} {
		res, err := xa.Send(ctx, commitX, producer.Message{Topic: "xa", Payload: []byte(d)})
		require.NoError(t, err, i)
		require.EqualValues(t, -1, res.Offset)
	}
	_, err = xa.Send(ctx, rollX, producer.Message{Topic: "xa", Payload: []byte("never")})
	require.NoError(t, err)
	require.ErrorIs(t, xa.Commit(ctx, commitX, false), producer.XAErrProto, "two-phase commit needs a prepare")
	for _, x := range []producer.XID{commitX, rollX, roX} {
		require.NoError(t, xa.End(ctx, x))
	}
	v, err := xa.Prepare(ctx, commitX)
	require.NoError(t, err)
	require.Equal(t, producer.XAOK, v)
	v, err = xa.Prepare(ctx, rollX)
	require.NoError(t, err)
	require.Equal(t, producer.XAOK, v)
	v, err = xa.Prepare(ctx, roX)
	require.NoError(t, err)
	require.Equal(t, producer.XAReadOnly, v, "no puts: read-only vote")
	_, err = xa.Send(ctx, commitX, producer.Message{Topic: "xa", Payload: []byte("late")})
	require.ErrorIs(t, err, producer.XAErrProto, "no puts after prepare")
	var xe *producer.XAError
	require.ErrorAs(t, err, &xe)
	require.EqualValues(t, -6, xe.Code)

	// Another resource manager's branches are not ours to recover.
	other, err := p.XAResource(ctx, producer.XAOptions{Broker: r.addr, Name: "rm-2"})
	require.NoError(t, err)
	otherX := producer.XID{FormatID: 1, GlobalID: []byte("other")}
	require.NoError(t, other.Start(ctx, otherX))
	_, err = other.Send(ctx, otherX, producer.Message{Topic: "xa", Payload: []byte("o")})
	require.NoError(t, err)
	_, err = other.Prepare(ctx, otherX)
	require.NoError(t, err)

	requireXIDs(t, xa, commitX, rollX)
	require.Empty(t, allPayloads(t, r.addr, "xa", 2), "prepared is still invisible")

	// Broker restart (same data directory): prepared branches survive. A new
	// producer and resource with the same name stand for the TM's restart.
	r.stop()
	r.start()
	p = directProducer(t, r.addr, 2)
	xa, err = p.XAResource(ctx, producer.XAOptions{Broker: r.addr, Name: "rm-1"})
	require.NoError(t, err)
	other, err = p.XAResource(ctx, producer.XAOptions{Broker: r.addr, Name: "rm-2"})
	require.NoError(t, err)
	requireXIDs(t, xa, commitX, rollX)
	require.NoError(t, xa.Commit(ctx, commitX, false))
	require.NoError(t, xa.Rollback(ctx, rollX))
	require.NoError(t, xa.Commit(ctx, commitX, false), "a replayed commit succeeds")
	require.NoError(t, xa.Rollback(ctx, rollX), "a replayed rollback succeeds")
	require.ErrorIs(t, xa.Commit(ctx, rollX, false), producer.XARBOther)
	requireXIDs(t, xa)
	require.ElementsMatch(t, []string{"x0", "x1", "x2"}, allPayloads(t, r.addr, "xa", 2))
	requireXIDs(t, other, otherX)
	require.NoError(t, other.Rollback(ctx, otherX))

	// Heuristic completion by an operator: HEURCOM until Forget.
	hx := producer.XID{FormatID: 9, GlobalID: []byte("heur")}
	require.NoError(t, xa.Start(ctx, hx))
	_, err = xa.Send(ctx, hx, producer.Message{Topic: "xa", Payload: []byte("h")})
	require.NoError(t, err)
	_, err = xa.Prepare(ctx, hx)
	require.NoError(t, err)
	require.NoError(t, r.b.CommitInDoubt(ctx, xa.Key(hx)))
	requireXIDs(t, xa, hx)
	err = xa.Commit(ctx, hx, false)
	require.ErrorIs(t, err, producer.XAHeurCom)
	require.False(t, errors.Is(err, producer.XAHeurRB))
	require.NoError(t, xa.Forget(ctx, hx))
	requireXIDs(t, xa)
	require.ErrorIs(t, xa.Forget(ctx, hx), producer.XAErrNOTA)

	// One-phase commit without a prepare.
	ox := producer.XID{FormatID: 9, GlobalID: []byte("one")}
	require.NoError(t, xa.Start(ctx, ox))
	_, err = xa.Send(ctx, ox, producer.Message{Topic: "xa", Payload: []byte("one")})
	require.NoError(t, err)
	require.NoError(t, xa.Commit(ctx, ox, true))
	require.Len(t, allPayloads(t, r.addr, "xa", 2), 5)
}

func TestXAResourceArgumentErrors(t *testing.T) {
	addr := startDirectBroker(t, 1)
	p := directProducer(t, addr, 1)
	ctx := testCtx(t, 20*time.Second)
	_, err := p.XAResource(ctx, producer.XAOptions{})
	require.ErrorIs(t, err, producer.ErrTxNoBroker)
	_, err = p.XAResource(ctx, producer.XAOptions{Broker: addr, Name: "a:b"})
	require.Error(t, err)
	xa, err := p.XAResource(ctx, producer.XAOptions{Topic: "t"})
	require.NoError(t, err)
	require.NotContains(t, xa.Name(), ":")
	require.ErrorIs(t, xa.Start(ctx, producer.XID{}), producer.XAErrProto, "empty gtrid")
	require.ErrorIs(t, xa.Commit(ctx, producer.XID{GlobalID: []byte("nope")}, false), producer.XAErrNOTA)
	x, uq, err := producer.XIDFromKey("XID:3:0a:0b:n")
	require.NoError(t, err)
	require.Equal(t, "n", uq)
	require.True(t, x.Equal(producer.XID{FormatID: 3, GlobalID: []byte{10}, BranchQualifier: []byte{11}}))
}

func requireXIDs(t *testing.T, xa *producer.XAResource, want ...producer.XID) {
	t.Helper()
	got, err := xa.Recover(testCtx(t, 20*time.Second))
	require.NoError(t, err)
	require.Len(t, got, len(want), "recover: %v", got)
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g.Equal(w)
		}
		require.True(t, found, "recover lists %s: %v", w, got)
	}
}

// The duplicate-Start check is the client's (MetaQ's broker answers a BEGIN
// of a known branch with success): it covers branches this resource started
// and has not finished, and a finished branch can be started again.
func TestXAStartDuplicateIsCheckedByTheResource(t *testing.T) {
	addr := startDirectBroker(t, 1)
	p := directProducer(t, addr, 1)
	ctx := testCtx(t, 30*time.Second)
	xa, err := p.XAResource(ctx, producer.XAOptions{Broker: addr, Name: "rm-dup"})
	require.NoError(t, err)
	x := producer.XID{FormatID: 1, GlobalID: []byte("dup")}
	require.NoError(t, xa.Start(ctx, x))
	require.ErrorIs(t, xa.Start(ctx, x), producer.XAErrDupID)
	require.NoError(t, xa.Rollback(ctx, x))
	require.NoError(t, xa.Start(ctx, x), "a finished branch may start again")
	v, err := xa.Prepare(ctx, x)
	require.NoError(t, err)
	require.Equal(t, producer.XAReadOnly, v)
	require.NoError(t, xa.Start(ctx, x), "a read-only prepare finishes the branch")
}

// End sends END (fire-and-forget, as MetaQ's TransactionContext.end): the
// broker detaches the branch, so a put under it is refused, while PREPARE
// and COMMIT of what was sent before still work.
func TestXAEndDetachesTheBranch(t *testing.T) {
	addr := startDirectBroker(t, 1)
	p := directProducer(t, addr, 1)
	ctx := testCtx(t, 30*time.Second)
	xa, err := p.XAResource(ctx, producer.XAOptions{Broker: addr, Name: "rm-end"})
	require.NoError(t, err)
	x := producer.XID{FormatID: 1, GlobalID: []byte("end")}
	require.NoError(t, xa.Start(ctx, x))
	_, err = xa.Send(ctx, x, producer.Message{Topic: "xaend", Payload: []byte("before end")})
	require.NoError(t, err)
	require.NoError(t, xa.End(ctx, x))
	_, err = xa.Send(ctx, x, producer.Message{Topic: "xaend", Payload: []byte("after end")})
	require.ErrorIs(t, err, producer.XAErrProto, "a put under an ended branch")
	v, err := xa.Prepare(ctx, x)
	require.NoError(t, err)
	require.Equal(t, producer.XAOK, v)
	require.NoError(t, xa.Commit(ctx, x, false))
	require.Equal(t, []string{"before end"}, allPayloads(t, addr, "xaend", 1))
	require.ErrorIs(t, xa.End(ctx, producer.XID{}), producer.XAErrProto, "empty gtrid")
}
