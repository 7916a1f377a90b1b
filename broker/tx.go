package broker

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/broker/txlog"
	"github.com/metaq-go/metaq/protocol"
)

// Transactions (PROTOCOL.md §7).
//
// Answers where MetaQ leaves a choice (a transaction manager replaying its
// decision after a crash must not fail hard):
//
//   - COMMIT of a transaction that committed answers 200, ROLLBACK of one
//     that rolled back answers 200 — also after a restart: the last 10,000
//     outcomes are journaled and carried through rotations. Older or
//     FORGET-ten ones get XAER_NOTA (-4), as MetaQ answers for any finished
//     transaction; TMs treat XAER_NOTA on a replayed commit as "already
//     completed".
//   - COMMIT (or PREPARE, or a put) of a transaction rolled back after its
//     timeout: XA_RBTIMEOUT (106) while the broker runs; timeouts of
//     unprepared transactions are not journaled, so after a restart it is
//     XAER_NOTA. COMMIT of one rolled back otherwise (ROLLBACK, connection
//     closed): XA_RBOTHER (104); ROLLBACK of a committed one: XAER_PROTO (-6).
//     Prepared transactions never time out, unless xaHeuristicTimeoutSeconds
//     is set: then one prepared longer than that is heuristically rolled
//     back (journaled; see tx_limits.go).
//   - COMMIT_TWO_PHASE of an unprepared transaction: XAER_PROTO;
//     COMMIT_ONE_PHASE of a prepared one commits (as MetaQ does).
//   - PREPARE of a local transaction, puts after PREPARE: XAER_PROTO;
//     PREPARE without puts answers 3 (XA_RDONLY) and finishes the branch.
//   - BEGIN timeout (TransactionalCommandProcessor.setTxTimeout): absent or
//     <= 0 means no timer at all, as in MetaQ; a positive timeout is capped
//     at maxTxTimeoutInSeconds.
//   - BEGIN of a live key answers 200 and changes nothing (MetaQ's
//     beginTransaction returns early: no second timer) — except that BEGIN
//     of an XA branch that was ENDed re-associates it (xa_start with TMJOIN
//     or TMRESUME: MetaQ's wire carries no flags). A local key live on
//     another connection is XAER_DUPID (-8): MetaQ keeps local transactions
//     per connection, and its session ids make such a clash impossible.
//   - END (xa_end with TMSUCCESS, TMFAIL or TMSUSPEND — the wire carries no
//     flags) has no reply, as in MetaQ, and dissociates an active XA
//     branch: a put under it then answers XAER_PROTO until a BEGIN
//     re-associates it. PREPARE, COMMIT and ROLLBACK accept a branch that
//     was not ENDed (MetaQ's client sends END asynchronously, possibly on
//     another connection of its group, so END may arrive after PREPARE).
//   - COMMIT or ROLLBACK while a commit or rollback of the same transaction
//     is in progress: XAER_RMFAIL (-7, retry). A commit whose partition
//     append failed after its COMMIT record was durable answers XAER_RMFAIL;
//     it is decided and completes on a retried COMMIT or at restart.
//   - After a heuristic decision (Broker.CommitInDoubt/RollbackInDoubt, or
//     the xaHeuristicTimeoutSeconds expiry), COMMIT and ROLLBACK answer
//     XA_HEURCOM (7) or XA_HEURRB (6), and RECOVER lists the transaction,
//     until FORGET (the XA rule: heuristic outcomes are remembered until
//     forgotten).
//   - BEGIN beyond maxTransactionsPerConnection (live transactions begun on
//     the connection) or maxTransactions (live transactions of the broker)
//     answers XAER_RMFAIL (-7); the connection stays usable.
//   - A local transaction is visible only to its connection (another gets
//     XAER_NOTA) and is rolled back when the connection closes; XA
//     transactions are global and outlive their connection.
//
// Messages put in a transaction are held in
// memory (bounded by Options.MaxTxBytes) and journaled with the PREPARE
// record (XA) or the COMMIT record (one-phase): a transaction that was
// never prepared is rolled back by a restart anyway, so journaling its puts
// earlier would buy nothing. A commit is: COMMIT record (always fsynced,
// whatever flushTxLogAtCommit says: per-partition atomicity across a crash
// depends on it), one store.AppendBatch per partition with the message ids
// assigned at put time, then a DONE record. See broker/txlog/doc.go for the
// recovery argument.

// Sentinel errors of the operator API.
var (
	// ErrTxUnknown: no such transaction.
	ErrTxUnknown = errors.New("broker: unknown transaction")
	// ErrTxState: the transaction is not in a state that allows the operation.
	ErrTxState = errors.New("broker: transaction in the wrong state")
)

// XA codes not in the protocol package's table.
const xaErrDupID = -8 // XAER_DUPID

type txPhase uint8

const (
	txActive txPhase = iota + 1
	txPrepared
	txCommitting // decided; commitRunning tells whether a goroutine works on it
	txRollingBack
	txHeurCommitted
	txHeurRolledBack
)

var txPhaseNames = [...]string{"", "active", "prepared", "committing", "rolling back",
	"heuristically committed", "heuristically rolled back"}

func (p txPhase) String() string { return txPhaseNames[p] }

// txOutcome is the remembered end of a finished transaction.
type txOutcome uint8

const (
	outCommitted txOutcome = iota + 1
	outRolledBack
	outTimedOut
)

// maxRememberedOutcomes bounds the outcomes kept for idempotent replays.
const maxRememberedOutcomes = 10000

type tx struct {
	key       string
	xa        bool
	uq        string // XA unique qualifier (RECOVER filter)
	owner     *conn  // local transactions only
	principal string // who began it (auth.go); "" = security was off, or journaled before owners
	conn      *conn  // the connection that began it, until it closes (maxTransactionsPerConnection)
	phase     txPhase
	deadline  time.Time // active transactions are rolled back after it; zero = no timeout
	ended     bool      // XA: END dissociated the branch; puts are refused until BEGIN
	msgs      []txlog.Message
	bytes     int64
	journaled bool              // a PREPARE record holds the messages
	parts     []txlog.PartStart // set once the COMMIT record is written
	running   bool              // a commit goroutine works on it
	heuristic bool              // commit decided by an operator
	// preparedAt is when it was prepared, or when the broker recovered it
	// from the journal (xaHeuristicTimeoutSeconds counts from there).
	preparedAt time.Time
}

// txManager owns every transaction of a broker.
type txManager struct {
	b          *Broker
	j          *txlog.Journal
	syncRecs   bool // fsync PREPARE/ROLLBACK/FORGET records (flushTxLogAtCommit=1)
	maxTimeout time.Duration
	maxBytes   int64 // per transaction
	maxHeld    int64 // all transactions' messages held in memory
	maxPerConn int   // live transactions begun on one connection
	maxTotal   int   // live transactions of the broker
	heurAfter  time.Duration

	mu       sync.Mutex // guards txs, byConn, outcomes, outOrder and the fields of every tx
	txs      map[string]*tx
	byConn   map[*conn]map[string]*tx // live transactions by the connection that began them
	outcomes map[string]txOutcome
	outOrder []string
	held     int64 // bytes of messages of live transactions

	stop      chan struct{}
	arm       chan struct{}  // one slot: the first live transaction wakes the sleeping reaper
	reaps     atomic.Int64   // the reaper's looks (tests count them)
	reapIdle  atomic.Bool    // the reaper sleeps until a transaction is live
	wg        sync.WaitGroup // the reaper
	closeOnce sync.Once
	closeErr  error
}

// txResult is the answer to a transaction request: code 0 = 200 with body.
type txResult struct {
	xa   int32 // XA error code when err
	err  bool
	body string
}

func txOK(body string) txResult { return txResult{body: body} }

func txFail(code int32, format string, args ...any) txResult {
	return txResult{err: true, xa: code, body: fmt.Sprintf(format, args...)}
}

func (r txResult) appendReply(dst []byte, opaque int32) []byte {
	if r.err {
		return protocol.AppendResult(dst, protocol.CodeInternal, opaque, protocol.AppendXAError(nil, r.xa, r.body))
	}
	return protocol.AppendResultString(dst, protocol.CodeOK, opaque, r.body)
}

func (r txResult) error() error {
	if !r.err {
		return nil
	}
	return &protocol.XAError{Code: r.xa, Msg: r.body}
}

// openTxManager opens the journal, restores prepared and heuristically
// completed transactions, completes commits that a crash interrupted and
// starts the timeout reaper.
func openTxManager(b *Broker) (*txManager, error) {
	o := b.opts
	jo := txlog.Options{MaxFileSize: o.TxLogMaxFileSize, MaxOutcomes: maxRememberedOutcomes, Logger: o.Logger}
	if o.FlushTxLogAtCommit == TxLogFsyncEverySecond {
		jo.SyncInterval = time.Second
	}
	j, st, err := txlog.Open(o.TxLogDir, jo)
	if err != nil {
		return nil, fmt.Errorf("broker: open transaction journal %s: %w", o.TxLogDir, err)
	}
	m := &txManager{b: b, j: j, syncRecs: o.FlushTxLogAtCommit == TxLogFsyncOnCommit || o.FlushTxLogAtCommit == TxLogFlushDefault,
		maxTimeout: o.MaxTxTimeout, maxBytes: o.MaxTxBytes, maxHeld: maxHeldTxBytes(o.MaxTxBytes),
		maxPerConn: o.MaxTransactionsPerConnection, maxTotal: o.MaxTransactions, heurAfter: o.XAHeuristicTimeout,
		txs: map[string]*tx{}, byConn: map[*conn]map[string]*tx{}, outcomes: map[string]txOutcome{}, stop: make(chan struct{}), arm: make(chan struct{}, 1)}
	// The state is the journal's: copy what we need before the first append.
	for _, ko := range st.Outcomes() {
		out := outCommitted
		if ko.Outcome == txlog.RolledBack {
			out = outRolledBack
		}
		m.remember(ko.Key, out)
	}
	if n := j.SkippedRecords(); n > 0 {
		b.stats.c.txJournalSkipped.Store(int64(n))
		b.log.Error("the transaction journal had damaged records that were skipped; the transactions they recorded may be lost",
			"skipped", n, "dir", o.TxLogDir)
	}
	var committing []*tx
	now := time.Now()
	for _, lt := range st.Live {
		if t := m.restore(lt, now); t.phase == txCommitting {
			t.running = true
			committing = append(committing, t)
		}
	}
	for _, t := range committing {
		if err := m.runCommit(t); err != nil {
			b.log.Error("cannot complete an interrupted transaction commit; it stays pending (COMMIT again or restart)",
				"tx", t.key, "err", err)
			continue
		}
		b.log.Info("completed a transaction commit interrupted by a crash", "tx", t.key, "messages", len(t.msgs))
	}
	if n := len(m.txs); n > 0 {
		b.log.Info("transactions recovered from the journal", "in_doubt", n)
	}
	m.wg.Add(1)
	go m.reaper()
	return m, nil
}

// restore makes a journaled transaction live: prepared, heuristically
// completed, or committing (a decided commit that is not complete: the
// caller runs it, or a COMMIT retries it). Caller holds mu (or owns m
// exclusively).
func (m *txManager) restore(lt *txlog.Tx, now time.Time) *tx {
	t := &tx{key: lt.Key, msgs: lt.Msgs, journaled: true, heuristic: lt.Heuristic, preparedAt: now, principal: lt.Owner}
	if k, err := protocol.ParseTxKey(lt.Key); err == nil && k.Kind == protocol.TxKeyXA {
		t.xa, t.uq = true, k.UniqueQualifier
	}
	for _, msg := range t.msgs {
		t.bytes += int64(len(msg.Data)) + store.HeaderSize
	}
	m.held += t.bytes
	switch lt.State {
	case txlog.Prepared:
		t.phase = txPrepared
	case txlog.Committing:
		t.phase, t.parts = txCommitting, slices.Clone(lt.Parts)
	case txlog.HeuristicCommitted:
		t.phase = txHeurCommitted
	case txlog.HeuristicRolledBack:
		t.phase = txHeurRolledBack
	}
	m.track(t)
	return t
}

// track makes t live; the first live transaction wakes the reaper. Caller
// holds mu (or owns m exclusively).
func (m *txManager) track(t *tx) {
	m.txs[t.key] = t
	if len(m.txs) == 1 {
		signal(m.arm)
	}
}

func defaultTxLogDir(dataLogDir string) string { return filepath.Join(dataLogDir, "transactions") }

// close stops the reaper and closes the journal. Idempotent.
func (m *txManager) close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		m.wg.Wait()
		m.closeErr = m.j.Close()
	})
	return m.closeErr
}

// remember records the outcome of a finished transaction. Caller holds mu
// (or owns m exclusively).
func (m *txManager) remember(key string, o txOutcome) {
	if _, ok := m.outcomes[key]; !ok {
		m.outOrder = append(m.outOrder, key)
	}
	m.outcomes[key] = o
	for len(m.outcomes) > maxRememberedOutcomes && len(m.outOrder) > 0 {
		delete(m.outcomes, m.outOrder[0])
		m.outOrder = m.outOrder[1:]
	}
	if len(m.outOrder) > 2*maxRememberedOutcomes {
		m.outOrder = slices.DeleteFunc(m.outOrder, func(k string) bool { _, ok := m.outcomes[k]; return !ok })
	}
}

// maxHeldTxBytes is the broker-wide bound of transaction data held in memory.
func maxHeldTxBytes(perTx int64) int64 { return 16 * perTx }

// release forgets a transaction's messages. Caller holds mu.
func (m *txManager) release(t *tx) {
	m.held -= t.bytes
	t.bytes, t.msgs = 0, nil
}

// remove forgets a live transaction. Caller holds mu.
func (m *txManager) remove(t *tx) {
	if m.txs[t.key] == t {
		delete(m.txs, t.key)
	}
	if t.conn != nil {
		if set := m.byConn[t.conn]; set != nil {
			delete(set, t.key)
			if len(set) == 0 {
				delete(m.byConn, t.conn)
			}
		}
		t.conn = nil
	}
}

// finish removes a transaction and remembers its outcome. Caller holds mu.
func (m *txManager) finish(t *tx, o txOutcome) {
	m.release(t)
	m.remove(t)
	m.remember(t.key, o)
	switch o {
	case outCommitted:
		m.b.stats.c.txCommit.Add(1)
	default:
		m.b.stats.c.txRollb.Add(1)
	}
}

// lookup finds a transaction visible to cn (a local one only from its own
// connection, any only to its principal or an admin when security is on;
// cn nil = the operator, who sees every transaction). Caller holds mu.
func (m *txManager) lookup(key string, cn *conn) *tx {
	t := m.txs[key]
	if t != nil && cn != nil && (!t.xa && t.owner != cn || !cn.mayUse(t)) {
		return nil
	}
	return t
}

// gone answers an operation on a transaction that is not live.
func (m *txManager) gone(key string, op string) txResult {
	switch m.outcomes[key] {
	case outTimedOut:
		return txFail(protocol.XARBTimeout, "transaction %s was rolled back after its timeout", key)
	case outRolledBack:
		return txFail(protocol.XARBOther, "transaction %s was rolled back", key)
	case outCommitted:
		return txFail(protocol.XAErrProto, "transaction %s is already committed", key)
	}
	return txFail(protocol.XAErrNOTA, "cannot %s unknown transaction %s (never begun on this connection/broker, or forgotten)", op, key)
}

// begin starts a transaction.
func (m *txManager) begin(cn *conn, key string, timeoutSecs int32) txResult {
	k, err := protocol.ParseTxKey(key)
	if err != nil || k.Kind == protocol.TxKeyNull {
		return txFail(protocol.XAErrProto, "BEGIN needs a transaction key, got %q", key)
	}
	if m.b.stopping.Load() {
		return txFail(protocol.XAErrRMFail, "broker is shutting down")
	}
	if err := m.j.Err(); err != nil {
		return txFail(protocol.XAErrRMFail, "transaction journal failed: %v", err)
	}
	t := &tx{key: key, xa: k.Kind == protocol.TxKeyXA, uq: k.UniqueQualifier, phase: txActive,
		deadline: txDeadline(time.Now(), timeoutSecs, m.maxTimeout), conn: cn}
	if !t.xa {
		t.owner = cn
	}
	if cn != nil {
		t.principal = cn.who()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.txs[key]; ok {
		if m.lookup(key, cn) == nil {
			if old.xa {
				return txFail(xaErrDupID, "transaction key %s is in use: use an XID of your own", key)
			}
			return txFail(xaErrDupID, "local transaction %s is live on another connection: use a session id of your own", key)
		}
		if old.phase == txActive {
			old.ended = false // TMJOIN / TMRESUME of an ended branch
		}
		return txOK("") // MetaQ: BEGIN of a known transaction changes nothing
	}
	if res, ok := m.overLimit(cn); !ok {
		return res
	}
	delete(m.outcomes, key)
	m.track(t)
	if cn != nil {
		set := m.byConn[cn]
		if set == nil {
			set = map[string]*tx{}
			m.byConn[cn] = set
		}
		set[key] = t
	}
	m.b.stats.c.txBegin.Add(1)
	if t.xa {
		m.b.stats.c.txXABegin.Add(1)
	}
	return txOK("")
}

// txDeadline is when a transaction begun at now with BEGIN's timeout
// (seconds) times out: never (zero time) for timeoutSecs <= 0, else after
// min(timeoutSecs, maxTimeout) — TransactionalCommandProcessor.setTxTimeout.
func txDeadline(now time.Time, timeoutSecs int32, maxTimeout time.Duration) time.Time {
	if timeoutSecs <= 0 {
		return time.Time{}
	}
	return now.Add(min(time.Duration(timeoutSecs)*time.Second, maxTimeout))
}

// end handles END (xa_end): an active XA branch is dissociated until a BEGIN
// of the same key re-associates it. Anything else (a local transaction, an
// unknown or finished key, a prepared branch) is left alone: END has no
// reply to carry an error.
func (m *txManager) end(cn *conn, key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.lookup(key, cn); t != nil && t.xa && t.phase == txActive {
		t.ended = true
	}
}

// put adds a message to an active transaction and returns its id.
func (m *txManager) put(cn *conn, key, topic string, part int32, flag int32, data []byte) (int64, txResult) {
	size := int64(len(data)) + store.HeaderSize
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.lookup(key, cn)
	if t == nil {
		return 0, m.gone(key, "put into")
	}
	if t.phase != txActive {
		return 0, txFail(protocol.XAErrProto, "transaction %s is %s: no more puts", key, t.phase)
	}
	if t.ended {
		return 0, txFail(protocol.XAErrProto, "transaction %s was ENDed (xa_end): BEGIN it again (TMJOIN/TMRESUME) before more puts", key)
	}
	if t.bytes+size > m.maxBytes {
		return 0, txFail(protocol.XAErrRM, "transaction %s would exceed %d bytes (maxTxBytes): commit smaller transactions", key, m.maxBytes)
	}
	if m.held+size > m.maxHeld {
		return 0, txFail(protocol.XAErrRMFail, "the broker holds %d bytes of uncommitted transaction data (limit %d): finish transactions, then retry", m.held, m.maxHeld)
	}
	m.held += size
	id := m.b.store.NewMessageID()
	t.msgs = append(t.msgs, txlog.Message{Topic: topic, Partition: part, ID: id, Flag: flag, Data: slices.Clone(data)})
	t.bytes += size
	return id, txOK("")
}

// prepare makes an XA transaction durable as prepared. It returns the
// result at once, or async=true and later calls done.
func (m *txManager) prepare(cn *conn, key string, done func(txResult)) (txResult, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.lookup(key, cn)
	if t == nil {
		return m.gone(key, "prepare"), false
	}
	if !t.xa {
		return txFail(protocol.XAErrProto, "PREPARE is for XA transactions; %s is local", key), false
	}
	if t.phase != txActive {
		return txFail(protocol.XAErrProto, "cannot prepare transaction %s: it is %s", key, t.phase), false
	}
	if len(t.msgs) == 0 {
		m.remove(t) // read-only: finished, nothing to commit or roll back
		return txOK(fmt.Sprint(protocol.XAReadOnly)), false
	}
	t.phase, t.preparedAt = txPrepared, time.Now()
	rec := txlog.Record{Kind: txlog.KindPrepare, Key: key, Msgs: t.msgs, Owner: t.principal}
	m.j.Append(rec, m.syncRecs, func(err error) {
		if err != nil {
			m.mu.Lock()
			t.phase = txActive
			m.mu.Unlock()
			done(txFail(protocol.XAErrRMFail, "prepare of %s failed in the journal: %v", key, err))
			return
		}
		m.mu.Lock()
		t.journaled = true
		m.mu.Unlock()
		// Off the journal's writer: the reply waits for the in-sync
		// followers (the request's inflight count owns this goroutine).
		go func() {
			if err := m.b.replicateTx(rec, true); err != nil {
				done(txFail(protocol.XAErrRMFail, "prepare of %s is journaled on this master but not on its in-sync replicas (%v): roll it back, or prepare again", key, err))
				return
			}
			done(txOK(fmt.Sprint(protocol.XAOK)))
		}()
	})
	return txResult{}, true
}

// commit commits a transaction; replays of a finished commit answer 200.
// heuristic marks an operator's decision. It returns the result at once,
// or async=true and later calls done from a goroutine it tracks in
// b.inflight.
func (m *txManager) commit(cn *conn, key string, onePhase, heuristic bool, done func(txResult)) (txResult, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.lookup(key, cn)
	if t == nil {
		if m.outcomes[key] == outCommitted {
			return txOK(""), false // a transaction manager replaying its decision
		}
		return m.gone(key, "commit"), false
	}
	switch t.phase {
	case txActive:
		if heuristic {
			return txFail(protocol.XAErrProto, "transaction %s is not prepared: nothing in doubt", key), false
		}
		if !onePhase {
			return txFail(protocol.XAErrProto, "cannot do a two-phase commit of %s: it has not been prepared", key), false
		}
		if len(t.msgs) == 0 {
			m.finish(t, outCommitted)
			return txOK(""), false
		}
	case txPrepared:
	case txCommitting:
		if t.running {
			return txFail(protocol.XAErrRMFail, "transaction %s is being committed: retry", key), false
		}
		// A commit that failed half-way (partition I/O error): try again.
	case txRollingBack:
		return txFail(protocol.XAErrRMFail, "transaction %s is being rolled back", key), false
	case txHeurCommitted:
		return txFail(protocol.XAHeurCom, "transaction %s was heuristically committed by an operator; FORGET it", key), false
	case txHeurRolledBack:
		return txFail(protocol.XAHeurRB, "transaction %s was heuristically rolled back (by an operator, or after xaHeuristicTimeoutSeconds); FORGET it", key), false
	}
	if m.b.stopping.Load() {
		return txFail(protocol.XAErrRMFail, "broker is shutting down: commit %s later", key), false
	}
	t.phase, t.running = txCommitting, true
	t.heuristic = t.heuristic || heuristic
	m.b.inflight.Add(1)
	go func() {
		defer m.b.inflight.Done()
		err := m.runCommit(t)
		if err != nil {
			done(txFail(protocol.XAErrRMFail, "commit of %s failed: %v", key, err))
			return
		}
		done(txOK(""))
	}()
	return txResult{}, true
}

// rollback rolls a transaction back; replays of a finished rollback answer 200.
func (m *txManager) rollback(cn *conn, key string, heuristic bool, done func(txResult)) (txResult, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.lookup(key, cn)
	if t == nil {
		if o := m.outcomes[key]; o == outRolledBack || o == outTimedOut {
			return txOK(""), false
		}
		return m.gone(key, "roll back"), false
	}
	switch t.phase {
	case txActive:
		if heuristic {
			return txFail(protocol.XAErrProto, "transaction %s is not prepared: nothing in doubt", key), false
		}
		m.finish(t, outRolledBack)
		return txOK(""), false
	case txPrepared:
	case txCommitting:
		if t.running {
			return txFail(protocol.XAErrRMFail, "transaction %s is being committed: cannot roll back", key), false
		}
		return txFail(protocol.XAErrProto, "transaction %s is committed (its commit is pending an I/O retry): cannot roll back", key), false
	case txRollingBack:
		return txFail(protocol.XAErrRMFail, "transaction %s is being rolled back: retry", key), false
	case txHeurCommitted:
		return txFail(protocol.XAHeurCom, "transaction %s was heuristically committed by an operator; FORGET it", key), false
	case txHeurRolledBack:
		return txFail(protocol.XAHeurRB, "transaction %s was heuristically rolled back (by an operator, or after xaHeuristicTimeoutSeconds); FORGET it", key), false
	}
	t.phase = txRollingBack
	rec := txlog.Record{Kind: txlog.KindRollback, Key: key, Heuristic: heuristic}
	m.j.Append(rec, m.syncRecs || heuristic, func(err error) {
		m.mu.Lock()
		if err != nil {
			t.phase = txPrepared
			m.mu.Unlock()
			done(txFail(protocol.XAErrRMFail, "rollback of %s failed in the journal: %v", key, err))
			return
		}
		if heuristic {
			t.phase = txHeurRolledBack
			m.release(t)
			m.b.stats.c.txRollb.Add(1)
		} else {
			m.finish(t, outRolledBack)
		}
		m.mu.Unlock()
		go func() { // off the journal's writer, as for PREPARE
			if err := m.b.replicateTx(rec, true); err != nil {
				done(txFail(protocol.XAErrRMFail, "%s is rolled back on this master but not yet on its in-sync replicas (%v): roll it back again", key, err))
				return
			}
			done(txOK(""))
		}()
	})
	return txResult{}, true
}

// forget drops a heuristically completed transaction.
func (m *txManager) forget(cn *conn, key string, done func(txResult)) (txResult, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.lookup(key, cn)
	if t == nil {
		return txFail(protocol.XAErrNOTA, "cannot forget unknown transaction %s", key), false
	}
	if t.phase != txHeurCommitted && t.phase != txHeurRolledBack {
		return txFail(protocol.XAErrProto, "transaction %s is %s, not heuristically completed: nothing to forget", key, t.phase), false
	}
	m.j.Append(txlog.Record{Kind: txlog.KindForget, Key: key}, m.syncRecs, func(err error) {
		if err != nil {
			done(txFail(protocol.XAErrRMFail, "forget of %s failed in the journal: %v", key, err))
			return
		}
		if err := m.b.replicateTx(txlog.Record{Kind: txlog.KindForget, Key: key}, false); err != nil {
			m.b.log.Warn("replication: FORGET not written to the transaction stream; a new master may list the transaction again", "tx", key, "err", err)
		}
		m.mu.Lock()
		m.remove(t)
		m.mu.Unlock()
		done(txOK(""))
	})
	return txResult{}, true
}

// recoverKeys lists the prepared and heuristically completed XA
// transactions whose unique qualifier is uq ("" = all) that cn may see.
func (m *txManager) recoverKeys(cn *conn, uq string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for _, t := range m.txs {
		if !t.xa || (uq != "" && t.uq != uq) || !cn.mayUse(t) {
			continue
		}
		switch t.phase {
		case txPrepared, txHeurCommitted, txHeurRolledBack:
			keys = append(keys, t.key)
		}
	}
	slices.Sort(keys)
	return keys
}

// connClosed rolls back the active local transactions of a closed
// connection; its XA transactions live on (they are global).
func (m *txManager) connClosed(cn *conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.byConn[cn] {
		switch {
		case !t.xa && t.phase == txActive:
			m.finish(t, outRolledBack)
		case !t.xa:
			t.owner, t.conn = nil, nil // a commit in flight finishes on its own
		default:
			t.conn = nil
		}
	}
	delete(m.byConn, cn)
}

// reaper rolls back active transactions past their deadline and
// heuristically rolls back prepared ones past xaHeuristicTimeout. It
// sleeps without a timer while no transaction is live (track wakes it).
func (m *txManager) reaper() {
	defer m.wg.Done()
	sleepyTicker(m.stop, 100*time.Millisecond, m.arm, &m.reapIdle, func(now time.Time) bool {
		m.reaps.Add(1)
		m.reap(now)
		m.expirePrepared(now)
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.txs) > 0
	})
}

func (m *txManager) reap(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.txs {
		if t.phase == txActive && !t.deadline.IsZero() && now.After(t.deadline) {
			m.finish(t, outTimedOut)
			m.b.log.Info("transaction rolled back after its timeout", "tx", t.key)
		}
	}
}

// TxInfo describes a transaction in doubt (for operators).
type TxInfo struct {
	Key      string
	State    string // "prepared", "committing", "heuristically committed", "heuristically rolled back"
	Messages int
	Bytes    int64
}

// InDoubt lists the XA transactions that are prepared, heuristically
// completed (until FORGET), or whose commit is pending after an I/O error.
func (b *Broker) InDoubt() []TxInfo {
	m := b.tx
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []TxInfo
	for _, t := range m.txs {
		if t.phase == txActive || t.phase == txCommitting && t.running {
			continue
		}
		out = append(out, TxInfo{Key: t.key, State: t.phase.String(), Messages: len(t.msgs), Bytes: t.bytes})
	}
	slices.SortFunc(out, func(a, c TxInfo) int {
		switch {
		case a.Key < c.Key:
			return -1
		case a.Key > c.Key:
			return 1
		}
		return 0
	})
	return out
}

// CommitInDoubt heuristically commits a prepared XA transaction: its
// messages become visible and RECOVER lists it as heuristically completed
// until the transaction manager (or FORGET) forgets it.
func (b *Broker) CommitInDoubt(ctx context.Context, key string) error {
	return b.tx.heuristic(ctx, key, true)
}

// RollbackInDoubt heuristically rolls back a prepared XA transaction.
func (b *Broker) RollbackInDoubt(ctx context.Context, key string) error {
	return b.tx.heuristic(ctx, key, false)
}

func (m *txManager) heuristic(ctx context.Context, key string, commit bool) error {
	m.mu.Lock()
	t := m.txs[key]
	if t == nil {
		m.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrTxUnknown, key)
	}
	if t.phase != txPrepared {
		m.mu.Unlock()
		return fmt.Errorf("%w: %s is %s, not prepared", ErrTxState, key, t.phase)
	}
	m.mu.Unlock()
	ch := make(chan txResult, 1)
	done := func(r txResult) { ch <- r }
	var res txResult
	var async bool
	if commit {
		res, async = m.commit(nil, key, false, true, done)
	} else {
		res, async = m.rollback(nil, key, true, done)
	}
	if async {
		select {
		case res = <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return res.error()
}
