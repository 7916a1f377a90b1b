package broker

import (
	"strings"

	"github.com/metaq-go/metaq/protocol"
)

// handleTransaction answers `transaction` requests (PROTOCOL.md §7). Cheap
// operations answer on the event loop; PREPARE, COMMIT, a ROLLBACK of a
// prepared transaction and FORGET wait for the journal (and the store) off
// the loop and reply asynchronously.
func (cn *conn) handleTransaction(r *protocol.TransactionRequest) {
	b, m := cn.b, cn.b.tx
	if r.Type == protocol.TxEnd {
		m.end(cn, r.TxKey) // MetaQ: END has no reply
		return
	}
	if b.stopping.Load() {
		cn.out = txFail(protocol.XAErrRMFail, "broker is shutting down: retry on restart").appendReply(cn.out, r.OpaqueID)
		return
	}
	if b.repl.follower.Load() {
		// A follower's journal is stale and its log a copy of its master's.
		cn.out = txFail(protocol.XAErrRMFail, "%s", b.slaveRefusal()).appendReply(cn.out, r.OpaqueID)
		return
	}
	opaque := r.OpaqueID
	cn.inflight.Add(1)
	b.inflight.Add(1)
	done := func(res txResult) {
		cn.replyDurable(res.appendReply(nil, opaque))
		cn.inflight.Add(-1)
		b.inflight.Done()
	}
	var res txResult
	async := false
	switch r.Type {
	case protocol.TxBegin:
		res = m.begin(cn, r.TxKey, r.Timeout)
	case protocol.TxPrepare:
		res, async = m.prepare(cn, r.TxKey, done)
	case protocol.TxCommitOnePhase, protocol.TxCommitTwoPhase:
		res, async = m.commit(cn, r.TxKey, r.Type == protocol.TxCommitOnePhase, false, done)
	case protocol.TxRollback:
		res, async = m.rollback(cn, r.TxKey, false, done)
	case protocol.TxForget:
		res, async = m.forget(cn, r.TxKey, done)
	case protocol.TxRecover:
		res = txOK(strings.Join(m.recoverKeys(cn, r.UniqueQualifier), "\r\n"))
	default:
		res = txFail(protocol.XAErrProto, "unsupported transaction type %s", r.Type)
	}
	if async {
		return
	}
	cn.inflight.Add(-1)
	b.inflight.Done()
	cn.out = res.appendReply(cn.out, opaque)
}

// handleTxPut adds a validated put to a transaction: the message is held
// (invisible) until the commit; the reply carries the id it will have and
// offset -1.
func (cn *conn) handleTxPut(r *protocol.PutRequest, key string, part int32) {
	b := cn.b
	id, res := b.tx.put(cn, key, r.Topic, part, r.Flag, r.Data)
	if res.err {
		b.stats.putFail(r.Topic)
		cn.out = res.appendReply(cn.out, r.OpaqueID)
		return
	}
	b.stats.putOK(r.Topic, 1, int64(len(r.Data)))
	cn.out = protocol.AppendPutResult(cn.out, r.OpaqueID, id, part, -1)
}
