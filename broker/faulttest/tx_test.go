package faulttest

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// txCall sends a transaction request and requires a 200 reply.
func txCall(t *testing.T, c *conn.Conn, key string, typ protocol.TxType, qualifier string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	rep, err := c.Do(ctx, conn.ProtocolRequest(&protocol.TransactionRequest{TxKey: key, SessionID: "sess", Type: typ, UniqueQualifier: qualifier}))
	require.NoError(t, err, "transaction %s %v", key, typ)
	require.Equal(t, int32(protocol.CodeOK), rep.Code, "transaction %s %v: %s", key, typ, rep.Body)
	return string(rep.Body)
}

// xaPrepare begins an XA transaction, puts two messages (partitions 0 and
// 1) and prepares it. The payloads are recorded as sent.
func xaPrepare(t *testing.T, c *conn.Conn, l *ledger, key string) {
	t.Helper()
	txCall(t, c, key, protocol.TxBegin, "")
	for p := int32(0); p < 2; p++ {
		payload := fmt.Sprintf("tx|%s|%d", key, p)
		l.send(payload, p)
		r := putReq(p, payload)
		r.TxKey = key
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		_, err := c.Put(ctx, r)
		cancel()
		require.NoError(t, err, "transactional put of %s", key)
	}
	require.Equal(t, fmt.Sprint(protocol.XAOK), txCall(t, c, key, protocol.TxPrepare, ""), "prepare %s", key)
}

// journalFrame is one frame of a transaction journal file.
type journalFrame struct {
	pos, size int64 // file position and length of the whole frame
	kind      byte
	key       string
}

// journalFrames parses the frames of the newest journal file (format:
// broker/txlog/doc.go).
func journalFrames(t *testing.T, dir string) (string, []journalFrame) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.txlog"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no journal in %s", dir)
	sort.Strings(files)
	path := files[len(files)-1]
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, len(b) >= 8 && string(b[:8]) == "MQTXLOG1", "%s has no journal magic", path)
	var out []journalFrame
	for pos := 8; pos+8 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[pos:]))
		body := b[pos+8 : min(len(b), pos+8+n)]
		require.GreaterOrEqual(t, len(body), 3, "%s: short frame at %d", path, pos)
		kl := int(binary.BigEndian.Uint16(body[1:]))
		out = append(out, journalFrame{pos: int64(pos), size: int64(8 + n), kind: body[0], key: string(body[3 : 3+kl])})
		pos += 8 + n
	}
	return path, out
}

// TestBinaryTxJournalBitFlipKeepsLaterPrepared: transactions are prepared
// (and left in doubt), then one more is prepared in the middle, then others
// are committed, then more are prepared; the broker is killed with -9 and
// bits are flipped in the middle PREPARE record of the journal. After the
// restart RECOVER must still list every transaction prepared before and
// after the damaged record, the committed transactions must be complete in
// the partitions, and nothing of an undecided transaction may be visible.
func TestBinaryTxJournalBitFlipKeepsLaterPrepared(t *testing.T) {
	t.Parallel()
	const q = "fq"
	b := startBroker(t, config{})
	l := newLedger()
	c := dial(t, b.addr)
	key := func(i int) string { return fmt.Sprintf("XID:1:%04x:01:%s", i, q) }
	var early, late, committed []string
	for i := 0; i < 3; i++ {
		early = append(early, key(i))
		xaPrepare(t, c, l, key(i))
	}
	middle := key(10)
	xaPrepare(t, c, l, middle)
	for i := 20; i < 23; i++ {
		committed = append(committed, key(i))
		xaPrepare(t, c, l, key(i))
		txCall(t, c, key(i), protocol.TxCommitTwoPhase, "")
	}
	for i := 30; i < 33; i++ {
		late = append(late, key(i))
		xaPrepare(t, c, l, key(i))
	}
	_ = c.Close()
	b.kill9()

	path, frames := journalFrames(t, filepath.Join(b.cfg.dataDir, "transactions"))
	var victim *journalFrame
	for i := range frames {
		if frames[i].kind == 1 && frames[i].key == middle {
			victim = &frames[i]
		}
	}
	require.NotNil(t, victim, "no PREPARE record of %s in %s (%d frames)", middle, path, len(frames))
	require.NotEqual(t, frames[len(frames)-1], *victim, "the damaged record must not be the last")
	at := victim.pos + victim.size/2
	flipBit(t, path, at, 0)
	flipBit(t, path, at+1, 5)
	t.Logf("flipped 2 bits at %d inside the PREPARE of %s (frame %d+%d of %d frames in %s)", at, middle, victim.pos, victim.size, len(frames), filepath.Base(path))

	b = b.restart()
	c = dial(t, b.addr)
	body := txCall(t, c, "null", protocol.TxRecover, q)
	listed := map[string]bool{}
	for _, k := range strings.Split(body, "\r\n") {
		if k != "" {
			listed[k] = true
		}
	}
	var missing []string
	for _, k := range append(append([]string{}, early...), late...) {
		if !listed[k] {
			missing = append(missing, k)
		}
	}
	require.Empty(t, missing, "prepared transactions LOST from RECOVER after a damaged journal record (listed: %v)", body)
	inDoubt := map[string]bool{middle: true}
	for _, k := range append(append([]string{}, early...), late...) {
		inDoubt[k] = true
	}
	for k := range listed {
		require.True(t, inDoubt[k], "RECOVER lists %s, which is not in doubt (committed or unknown)", k)
	}
	t.Logf("RECOVER after the damage lists %d transactions; the damaged %s listed: %v", len(listed), middle, listed[middle])

	got := readAll(t, b.addr, false)
	count := map[string]int{}
	for _, r := range got {
		require.True(t, r.clean(), "partition unreadable: %s", r)
		for _, m := range r.msgs {
			f := strings.Split(m.payload, "|")
			require.Len(t, f, 3, "unexpected message %q", m.payload)
			count[f[1]]++
		}
	}
	for _, k := range committed {
		require.Equal(t, 2, count[k], "committed transaction %s: want its 2 messages stored once, got %d", k, count[k])
	}
	for k, n := range count {
		require.Contains(t, committed, k, "%d messages of %s are visible although it was never committed", n, k)
	}

	// The in-doubt transactions can still be finished.
	txCall(t, c, late[0], protocol.TxCommitTwoPhase, "")
	txCall(t, c, early[0], protocol.TxRollback, "")
	n := 0
	for _, r := range readAll(t, b.addr, false) {
		for _, m := range r.msgs {
			if strings.Contains(m.payload, "|"+late[0]+"|") {
				n++
			}
		}
	}
	require.Equal(t, 2, n, "committing %s after the restart must store its 2 messages", late[0])
	b.requireAlive("a damaged journal record")
}
