package broker

import (
	"time"

	"github.com/metaq-go/metaq/protocol"
)

// Limits on transactions and the expiry of prepared XA transactions.

// Defaults of the transaction limits (maxTransactionsPerConnection,
// maxTransactions). A MetaQ Java client shares one connection per broker
// among every producer of a session factory, so one connection may carry
// a transaction per application thread: the per-connection default leaves
// room for thousands of threads, and the broker-wide one bounds the memory
// of a flood of BEGINs (an idle transaction costs a few hundred bytes until
// maxTxTimeoutInSeconds rolls it back).
const (
	DefaultMaxTransactionsPerConnection = 10000
	DefaultMaxTransactions              = 100000
)

// overLimit checks the transaction limits for a BEGIN on cn. Caller holds mu.
func (m *txManager) overLimit(cn *conn) (txResult, bool) {
	if n := len(m.byConn[cn]); cn != nil && n >= m.maxPerConn {
		return txFail(protocol.XAErrRMFail, "this connection has %d open transactions (maxTransactionsPerConnection=%d): "+
			"commit or roll back some, then BEGIN again", n, m.maxPerConn), false
	}
	if n := len(m.txs); n >= m.maxTotal {
		return txFail(protocol.XAErrRMFail, "the broker has %d open transactions (maxTransactions=%d): "+
			"retry once some are finished (prepared XA transactions count until they are committed, rolled back or forgotten)",
			n, m.maxTotal), false
	}
	return txResult{}, true
}

// expirePrepared heuristically rolls back the XA transactions prepared
// longer than xaHeuristicTimeoutSeconds (0 = never). The decision is
// journaled like an operator's RollbackInDoubt: RECOVER lists the
// transaction and COMMIT answers XA_HEURRB until the transaction manager
// FORGETs it, across restarts too.
func (m *txManager) expirePrepared(now time.Time) {
	if m.heurAfter <= 0 || m.j.Err() != nil { // a failed journal cannot record the decision
		return
	}
	var keys []string
	m.mu.Lock()
	for _, t := range m.txs {
		if t.phase == txPrepared && now.Sub(t.preparedAt) >= m.heurAfter {
			keys = append(keys, t.key)
		}
	}
	m.mu.Unlock()
	for _, key := range keys {
		res, async := m.rollback(nil, key, true, func(r txResult) { m.logExpiry(key, r) })
		if !async {
			m.logExpiry(key, res)
		}
	}
}

func (m *txManager) logExpiry(key string, r txResult) {
	if r.err {
		m.b.log.Warn("did not heuristically roll back an expired prepared XA transaction (it changed state, or the journal failed)",
			"tx", key, "err", r.error())
		return
	}
	m.b.log.Warn("heuristically rolled back a prepared XA transaction after xaHeuristicTimeoutSeconds; "+
		"its transaction manager gets XA_HEURRB on COMMIT and must FORGET it",
		"tx", key, "xaHeuristicTimeout", m.heurAfter)
}

// txStats are the transaction lines of `stats`.
func (m *txManager) txStats(add func(key string, v any)) {
	m.mu.Lock()
	open, held := len(m.txs), m.held
	m.mu.Unlock()
	add("tx_open", open)
	add("tx_held_bytes", held)
	add("tx_journal_skipped_records", m.b.stats.c.txJournalSkipped.Load())
}
