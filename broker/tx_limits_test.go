package broker_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/broker/txlog"
	"github.com/metaq-go/metaq/protocol"
)

// requireXAText checks a 500 XAException reply with code whose text mentions want.
func requireXAText(t testing.TB, r reply, code int32, want string) {
	t.Helper()
	requireXA(t, r, code)
	require.Contains(t, string(r.body), want)
}

// TestTxBeginBeyondTheLimitsIsRefusedAndTheConnectionStaysUsable: BEGIN
// beyond maxTransactionsPerConnection or maxTransactions answers
// XAER_RMFAIL naming the limit; the connection keeps working, and a slot
// frees when a transaction finishes or its connection closes (which also
// frees the memory its messages held).
func TestTxBeginBeyondTheLimitsIsRefusedAndTheConnectionStaysUsable(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) {
		o.MaxTransactionsPerConnection, o.MaxTransactions = 3, 5
	}})
	c1 := brokertest.Dial(t, b.Addr())
	for i := 1; i <= 3; i++ {
		key := fmt.Sprintf("TX:a:%d", i)
		requireOK(t, txCall(t, c1, txLine(key, "BEGIN", i), i))
		requireOK(t, txCall(t, c1, txPutLine("tx", 0, "held", key, 10+i), 10+i))
	}
	requireXAText(t, txCall(t, c1, txLine("TX:a:4", "BEGIN", 20), 20), protocol.XAErrRMFail, "maxTransactionsPerConnection=3")
	requireOK(t, txCall(t, c1, "version 21\r\n", 21))
	requireOK(t, txCall(t, c1, txLine("TX:a:1", "COMMIT_ONE_PHASE", 22), 22))
	requireOK(t, txCall(t, c1, txLine("TX:a:4", "BEGIN", 23), 23)) // the commit freed a slot
	requireOK(t, txCall(t, c1, txPutLine("tx", 0, "held", "TX:a:4", 24), 24))
	require.Equal(t, "3", statsValue(t, b.Addr(), "tx_open"))

	c2 := brokertest.Dial(t, b.Addr())
	requireOK(t, txCall(t, c2, txLine("XID:1:01:01:q", "BEGIN", 30), 30))
	requireOK(t, txCall(t, c2, txLine("XID:1:02:01:q", "BEGIN", 31), 31))
	requireXAText(t, txCall(t, c2, txLine("XID:1:03:01:q", "BEGIN", 32), 32), protocol.XAErrRMFail, "maxTransactions=5")
	requireOK(t, txCall(t, c2, txPutLine("tx", 0, "xa", "XID:1:01:01:q", 33), 33)) // still usable

	// Closing c1 rolls back its local transactions and frees their memory;
	// c2's XA transactions are global and keep counting.
	require.NotEqual(t, "0", statsValue(t, b.Addr(), "tx_held_bytes"))
	c1.Close()
	require.Eventually(t, func() bool { return statsValue(t, b.Addr(), "tx_open") == "2" }, 10*time.Second, 10*time.Millisecond)
	requireOK(t, txCall(t, c2, txLine("XID:1:01:01:q", "ROLLBACK", 34), 34))
	require.Equal(t, "0", statsValue(t, b.Addr(), "tx_held_bytes"), "no transaction holds messages any more")
	requireOK(t, txCall(t, c2, txLine("XID:1:03:01:q", "BEGIN", 35), 35))
	require.Equal(t, []string{"held"}, dataOf(payloads(t, b.Addr(), "tx", 0)), "only TX:a:1 was committed")
}

// prepareXA begins, fills and prepares an XA transaction.
func prepareXA(t testing.TB, c *brokertest.Client, key string, part int, data string) {
	t.Helper()
	requireOK(t, txCall(t, c, txLine(key, "BEGIN", 1), 1))
	requireOK(t, txCall(t, c, txPutLine("tx", part, data, key, 2), 2))
	r := txCall(t, c, txLine(key, "PREPARE", 3), 3)
	requireOK(t, r)
	require.Equal(t, "0", string(r.body))
}

// recoverList answers RECOVER for every unique qualifier.
func recoverList(t testing.TB, c *brokertest.Client) string {
	t.Helper()
	r := txCall(t, c, txLine("null", "RECOVER", 9), 9)
	requireOK(t, r)
	return string(r.body)
}

// heuristicallyRolledBack waits until key is listed as heuristically rolled back.
func heuristicallyRolledBack(b *broker.Broker, key string) func() bool {
	return func() bool {
		for _, in := range b.InDoubt() {
			if in.Key == key && in.State == "heuristically rolled back" {
				return true
			}
		}
		return false
	}
}

// TestTxPreparedXAExpiresHeuristicallyAcrossRestarts: with
// xaHeuristicTimeoutSeconds set, a prepared XA transaction is rolled back
// heuristically; RECOVER lists it and COMMIT answers XA_HEURRB until
// FORGET, also after a restart. One prepared before a restart (with the
// expiry off) expires after it, counted from the restart.
func TestTxPreparedXAExpiresHeuristicallyAcrossRestarts(t *testing.T) {
	const x, y = "XID:9:01:01:q", "XID:9:02:01:q"
	rb := newRestartable(t, func(o *broker.Options) { o.XAHeuristicTimeout = 200 * time.Millisecond })
	c := brokertest.Dial(t, rb.b.Addr())
	prepareXA(t, c, x, 0, "expired")
	require.Eventually(t, heuristicallyRolledBack(rb.b, x), 20*time.Second, 10*time.Millisecond)
	require.Equal(t, x, recoverList(t, c), "a heuristic outcome is listed until FORGET")
	requireXA(t, txCall(t, c, txLine(x, "COMMIT_TWO_PHASE", 4), 4), protocol.XAHeurRB)
	require.Empty(t, payloads(t, rb.b.Addr(), "tx", 0))

	rb.stop()
	rb.mod = nil // expiry off: y stays prepared
	rb.start()
	c = brokertest.Dial(t, rb.b.Addr())
	require.Equal(t, x, recoverList(t, c), "the heuristic decision survives a restart")
	requireXA(t, txCall(t, c, txLine(x, "COMMIT_TWO_PHASE", 5), 5), protocol.XAHeurRB)
	requireXA(t, txCall(t, c, txLine(x, "ROLLBACK", 6), 6), protocol.XAHeurRB)
	prepareXA(t, c, y, 1, "recovered")
	requireOK(t, txCall(t, c, txLine(x, "FORGET", 7), 7))
	require.Equal(t, y, recoverList(t, c))
	requireXA(t, txCall(t, c, txLine(x, "COMMIT_TWO_PHASE", 8), 8), protocol.XAErrNOTA)

	rb.stop()
	rb.mod = func(o *broker.Options) { o.XAHeuristicTimeout = 200 * time.Millisecond }
	rb.start()
	require.Eventually(t, heuristicallyRolledBack(rb.b, y), 20*time.Second, 10*time.Millisecond)
	c = brokertest.Dial(t, rb.b.Addr())
	requireXA(t, txCall(t, c, txLine(y, "COMMIT_TWO_PHASE", 10), 10), protocol.XAHeurRB)
	require.Empty(t, payloads(t, rb.b.Addr(), "tx", 1))
}

// journalFile returns the only journal file of a stopped broker and the
// offsets of its records.
func journalFile(t *testing.T, dir string) (string, []byte, []txlog.Record, []int) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "transactions", "*.txlog"))
	require.NoError(t, err)
	require.Len(t, names, 1)
	b, err := os.ReadFile(names[0])
	require.NoError(t, err)
	var recs []txlog.Record
	var offs []int
	for pos := 8; pos < len(b); {
		r, n, err := txlog.DecodeRecord(b[pos:])
		require.NoError(t, err)
		recs, offs = append(recs, r), append(offs, pos)
		pos += n
	}
	return names[0], b, recs, offs
}

// flipInRecord flips a bit in the body of the first record of kind for key.
func flipInRecord(t *testing.T, path string, b []byte, recs []txlog.Record, offs []int, kind txlog.Kind, key string) {
	t.Helper()
	for i, r := range recs {
		if r.Kind == kind && r.Key == key {
			b[offs[i]+12] ^= 0x20
			require.NoError(t, os.WriteFile(path, b, 0o644))
			return
		}
	}
	t.Fatalf("no %s record of %s in the journal", kind, key)
}

// TestTxJournalDamageInTheMiddle flips a bit in a journal record that later
// PREPARE and COMMIT records follow: after a restart the transactions
// recorded after it are intact (a prepared XA transaction is still listed
// by RECOVER) and stats count the skipped record. When the damaged record
// is one that a later record depends on, the broker refuses to start with
// ErrUnreplayable and leaves the journal file as it was.
func TestTxJournalDamageInTheMiddle(t *testing.T) {
	const lost, committed, prepared = "XID:4:01:01:q", "XID:4:02:01:q", "XID:4:03:01:q"
	setup := func(t *testing.T) *restartable {
		rb := newRestartable(t, nil)
		c := brokertest.Dial(t, rb.b.Addr())
		prepareXA(t, c, lost, 0, "lost")
		prepareXA(t, c, committed, 0, "committed")
		requireOK(t, txCall(t, c, txLine(committed, "COMMIT_TWO_PHASE", 4), 4))
		prepareXA(t, c, prepared, 1, "prepared")
		rb.stop()
		return rb
	}

	t.Run("skippable", func(t *testing.T) {
		rb := setup(t)
		path, b, recs, offs := journalFile(t, rb.dir)
		flipInRecord(t, path, b, recs, offs, txlog.KindPrepare, lost)
		rb.start()
		c := brokertest.Dial(t, rb.b.Addr())
		require.Equal(t, prepared, recoverList(t, c), "the transaction prepared after the damage is intact")
		requireOK(t, txCall(t, c, txLine(committed, "COMMIT_TWO_PHASE", 5), 5)) // its outcome too
		require.Equal(t, "1", statsValue(t, rb.b.Addr(), "tx_journal_skipped_records"))
		kept, err := os.ReadFile(path + ".damaged")
		require.NoError(t, err, "the damaged file is kept")
		require.Equal(t, b, kept)
		requireOK(t, txCall(t, c, txLine(prepared, "COMMIT_TWO_PHASE", 6), 6))
		require.Equal(t, []string{"prepared"}, dataOf(payloads(t, rb.b.Addr(), "tx", 1)))
		require.Equal(t, []string{"committed"}, dataOf(payloads(t, rb.b.Addr(), "tx", 0)))
	})

	t.Run("unreplayable", func(t *testing.T) {
		rb := setup(t)
		path, b, recs, offs := journalFile(t, rb.dir)
		flipInRecord(t, path, b, recs, offs, txlog.KindPrepare, committed) // its COMMIT follows
		_, err := brokertest.New(t, brokertest.Options{Partitions: 2, DataDir: rb.dir})
		require.ErrorIs(t, err, txlog.ErrUnreplayable)
		require.True(t, strings.Contains(err.Error(), path), "the error names the file: %v", err)
		after, rerr := os.ReadFile(path)
		require.NoError(t, rerr, "the journal file is kept")
		require.Equal(t, b, after, "the journal file is unchanged")
		names, _ := filepath.Glob(filepath.Join(rb.dir, "transactions", "*"))
		require.Equal(t, []string{path}, names, "nothing was rotated or added")
	})
}
