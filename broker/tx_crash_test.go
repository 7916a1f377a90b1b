package broker_test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/protocol"
)

// txRecord is what a client of the crash test knows about one transaction.
type txRecord struct {
	key                         string
	xa                          bool
	want                        map[int32]int // messages put per partition
	prepareSent, prepareAcked   bool
	commitSent, commitAcked     bool
	rollbackSent, rollbackAcked bool
}

type txLedger struct {
	mu      sync.Mutex // guards txs
	txs     map[string]*txRecord
	commits atomic.Int64
}

func (l *txLedger) update(key string, f func(r *txRecord)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(l.txs[key])
}

// txWorker runs transactions on one connection until it breaks or stop
// closes: XA two-phase commits, XA prepare-then-rollback, and pipelined
// local one-phase commits, each over 1..6 messages on several partitions.
func txWorker(addr string, run, worker int, l *txLedger, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer conn.Close()
	cl := &brokertest.Client{Conn: conn, R: bufio.NewReader(conn)}
	rng := rand.New(rand.NewPCG(uint64(run), uint64(worker)))
	op := 0
	// call sends lines and reads one reply per line; ok reports all were 200.
	call := func(lines ...string) (codes []int32, bodies []string, ok bool) {
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte(strings.Join(lines, ""))); err != nil {
			return nil, nil, false
		}
		for range lines {
			r, closed, err := readOne(cl, 30*time.Second)
			if err != nil || closed {
				return codes, bodies, false
			}
			codes, bodies = append(codes, r.code), append(bodies, string(r.body))
		}
		return codes, bodies, true
	}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		kind := i % 4 // 0 XA commit, 1 XA rollback, 2 local commit, 3 XA prepared and left in doubt
		rec := &txRecord{xa: kind != 2, want: map[int32]int{}}
		if rec.xa {
			rec.key = fmt.Sprintf("XID:1:%04x%04x%04x:01:crashq", run, worker, i)
		} else {
			rec.key = fmt.Sprintf("TX:r%dw%d:%d", run, worker, i)
		}
		l.mu.Lock()
		l.txs[rec.key] = rec
		l.mu.Unlock()
		lines := []string{txLine(rec.key, "BEGIN", op)}
		n := 1 + rng.IntN(6)
		for j := 0; j < n; j++ {
			p := int32(rng.IntN(crashParts))
			rec.want[p]++
			data := fmt.Sprintf("tx|%s|%d|%s", rec.key, j, strings.Repeat("x", rng.IntN(200)))
			lines = append(lines, txPutLine(crashTopic, int(p), data, rec.key, op))
		}
		if !rec.xa {
			l.update(rec.key, func(r *txRecord) { r.commitSent = true })
			lines = append(lines, txLine(rec.key, "COMMIT_ONE_PHASE", op))
			codes, _, ok := call(lines...)
			if !ok {
				return
			}
			if codes[len(codes)-1] == 200 {
				l.update(rec.key, func(r *txRecord) { r.commitAcked = true })
				l.commits.Add(1)
			}
			continue
		}
		if _, _, ok := call(lines...); !ok {
			return
		}
		l.update(rec.key, func(r *txRecord) { r.prepareSent = true })
		codes, bodies, ok := call(txLine(rec.key, "PREPARE", op))
		if !ok {
			return
		}
		if codes[0] != 200 || bodies[0] != "0" {
			continue
		}
		l.update(rec.key, func(r *txRecord) { r.prepareAcked = true })
		switch kind {
		case 3:
			continue
		case 0:
			l.update(rec.key, func(r *txRecord) { r.commitSent = true })
			codes, _, ok = call(txLine(rec.key, "COMMIT_TWO_PHASE", op))
			if ok && codes[0] == 200 {
				l.update(rec.key, func(r *txRecord) { r.commitAcked = true })
				l.commits.Add(1)
			}
		default:
			l.update(rec.key, func(r *txRecord) { r.rollbackSent = true })
			codes, _, ok = call(txLine(rec.key, "ROLLBACK", op))
			if ok && codes[0] == 200 {
				l.update(rec.key, func(r *txRecord) { r.rollbackAcked = true })
			}
		}
		if !ok {
			return
		}
	}
}

// txCrashRuns is the number of kill -9 cycles (METAQ_TX_CRASH_RUNS overrides).
func txCrashRuns() int {
	if n, err := strconv.Atoi(os.Getenv("METAQ_TX_CRASH_RUNS")); err == nil && n > 0 {
		return n
	}
	return 8
}

// TestTxKill9BetweenPrepareAndCommitAndDuringCommit kills the broker
// subprocess with SIGKILL while workers run XA and local transactions, many
// times, and checks after each restart: prepared transactions are listed by
// RECOVER (and nothing acknowledged as finished is); replayed commits and
// rollbacks answer 200; every transaction is all or nothing (per partition
// and across partitions), acknowledged commits are complete, rolled-back
// and never-committed transactions are absent, no message is stored twice.
func TestTxKill9BetweenPrepareAndCommitAndDuringCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess crash test")
	}
	dir := t.TempDir()
	l := &txLedger{txs: map[string]*txRecord{}}
	decided := map[string]bool{} // in-doubt transactions this test committed (true) or rolled back (false) after a restart
	rng := rand.New(rand.NewPCG(1, 2))
	ch := startChild(t, dir)
	runs := txCrashRuns()
	for run := 0; run < runs; run++ {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go txWorker(ch.addr, run, w, l, stop, &wg)
		}
		target := l.commits.Load() + int64(5+rng.IntN(60))
		require.Eventually(t, func() bool { return l.commits.Load() >= target }, 60*time.Second, time.Millisecond,
			"transactions made no progress\n%s", ch.stderr.String())
		require.NoError(t, ch.cmd.Process.Signal(syscall.SIGKILL))
		ch.wait(t, 10*time.Second)
		close(stop)
		wg.Wait()
		ch = startChild(t, dir)
		txAudit(t, ch.addr, l, decided)
	}
	l.mu.Lock()
	var acked, prepared, rolled, interrupted int
	for _, r := range l.txs {
		if r.commitSent && !r.commitAcked {
			interrupted++
		}
		if r.commitAcked {
			acked++
		}
		if r.prepareAcked {
			prepared++
		}
		if r.rollbackAcked {
			rolled++
		}
	}
	l.mu.Unlock()
	t.Logf("%d kill -9 runs: %d transactions, %d commits acknowledged, %d commits interrupted by the kill, %d prepares acknowledged, %d rollbacks acknowledged, %d in-doubt decided after restarts",
		runs, len(l.txs), acked, interrupted, prepared, rolled, len(decided))
}

// txAudit checks a restarted broker against the ledger, finishes the
// in-doubt transactions (alternately commit and rollback) and replays
// finished decisions.
func txAudit(t *testing.T, addr string, l *txLedger, decided map[string]bool) {
	t.Helper()
	c := brokertest.Dial(t, addr)
	defer c.Close()
	r := txCall(t, c, txLine("null", "RECOVER", 1, "crashq"), 1)
	requireOK(t, r)
	inDoubt := map[string]bool{}
	if len(r.body) > 0 {
		for _, k := range strings.Split(string(r.body), "\r\n") {
			inDoubt[k] = true
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range inDoubt {
		rec := l.txs[k]
		require.NotNil(t, rec, "RECOVER lists %s, which nobody began", k)
		require.True(t, rec.prepareSent, "%s was never prepared", k)
		require.False(t, rec.commitAcked || rec.rollbackAcked, "%s was finished but is in doubt", k)
		_, done := decided[k]
		require.False(t, done, "%s was decided after an earlier restart", k)
	}
	n := 0
	for k, rec := range l.txs {
		if _, done := decided[k]; done {
			continue
		}
		if rec.prepareAcked && !rec.commitSent && !rec.rollbackSent {
			require.True(t, inDoubt[k], "prepared %s is not listed by RECOVER after a crash", k)
		}
		if inDoubt[k] {
			commit := n%2 == 0
			n++
			typ := "ROLLBACK"
			if commit {
				typ = "COMMIT_TWO_PHASE"
			}
			requireOK(t, txCall(t, c, txLine(k, typ, 2), 2))
			decided[k] = commit
		}
	}
	// Replays of acknowledged decisions (and of ours) are idempotent.
	for k, rec := range l.txs {
		commit, ours := decided[k]
		switch {
		case rec.commitAcked || ours && commit:
			typ := "COMMIT_TWO_PHASE"
			if !rec.xa {
				typ = "COMMIT_ONE_PHASE"
			}
			requireOK(t, txCall(t, c, txLine(k, typ, 3), 3))
		case rec.rollbackAcked || ours && !commit:
			requireOK(t, txCall(t, c, txLine(k, "ROLLBACK", 4), 4))
		}
	}
	// The logs: every transaction is all or nothing.
	got := map[string]map[int32]int{}
	ids := map[int64]bool{}
	all := readAll(t, addr)
	for p, msgs := range all {
		for _, m := range msgs {
			require.False(t, ids[m.id], "duplicate message id %d", m.id)
			ids[m.id] = true
			f := strings.SplitN(m.data, "|", 3)
			if len(f) != 3 || f[0] != "tx" {
				continue
			}
			if got[f[1]] == nil {
				got[f[1]] = map[int32]int{}
			}
			got[f[1]][p]++
		}
	}
	for k, rec := range l.txs {
		have := got[k]
		commit, ours := decided[k]
		mustHave := rec.commitAcked || ours && commit
		mustNot := rec.rollbackAcked || !rec.commitSent // nobody asked for a commit
		if ours {
			mustNot = !commit
		}
		if len(have) == 0 {
			require.False(t, mustHave, "acknowledged or decided commit %s lost", k)
			continue
		}
		require.False(t, mustNot, "%s was not committed but %v of its messages are stored (%+v, in doubt %v)", k, have, *rec, inDoubt[k])
		for p, n := range rec.want {
			require.Equal(t, n, have[p], "%s partition %d: torn transaction (stored %v, want %v)", k, p, have, rec.want)
		}
		require.Len(t, have, len(rec.want), "%s stored in unexpected partitions", k)
	}
	for k := range got {
		require.Contains(t, l.txs, k, "stored messages of unknown transaction %s", k)
	}
	_ = protocol.XAOK
}
