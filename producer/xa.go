package producer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// XA: the broker as a resource manager of a distributed (two-phase)
// transaction. A transaction manager (TM) drives an XAResource the way JTA
// drives javax.transaction.xa.XAResource:
//
//	Start(xid) → Send(xid, msg)... → End(xid) → Prepare(xid) → Commit(xid, false)
//
// and after a crash lists the prepared branches with Recover and finishes
// each with Commit or Rollback. A branch's key is
// XID:<formatId>:<hex gtrid>:<hex bqual>:<uniqueQualifier> (PROTOCOL.md §7);
// the unique qualifier names this resource manager so that Recover lists
// only its branches. XA branches are global on the broker: any connection
// may act on them, and prepared ones survive broker restarts.

// XAError is a broker's XA refusal (a 500 reply with an XAException body).
// Code is the XA code (XAER_NOTA -4, XA_HEURCOM 7, ...); match with
// errors.Is against the XA sentinels.
type XAError struct {
	Code int32
	Msg  string
}

func (e *XAError) Error() string {
	s := "producer: XA error " + protocol.XACodeName(e.Code) + " (" + strconv.Itoa(int(e.Code)) + ")"
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// Is makes errors.Is(err, XAErrNOTA) (a sentinel: no message) match every
// *XAError of the same code.
func (e *XAError) Is(target error) bool {
	t, ok := target.(*XAError)
	return ok && t.Msg == "" && t.Code == e.Code
}

// Sentinels matching an *XAError by code with errors.Is.
var (
	// XAErrNOTA (XAER_NOTA, -4): unknown branch — never begun, finished and
	// forgotten, or an unprepared one lost in a broker restart. On a replayed
	// Commit or Rollback a TM treats it as "already completed".
	XAErrNOTA = &XAError{Code: protocol.XAErrNOTA}
	// XAErrProto (XAER_PROTO, -6): the operation is not allowed in the
	// branch's state (e.g. two-phase commit of an unprepared branch).
	XAErrProto = &XAError{Code: protocol.XAErrProto}
	// XAErrRM (XAER_RMERR, -3): resource manager error (e.g. too large).
	XAErrRM = &XAError{Code: protocol.XAErrRM}
	// XAErrRMFail (XAER_RMFAIL, -7): unavailable or busy; retry.
	XAErrRMFail = &XAError{Code: protocol.XAErrRMFail}
	// XAErrDupID (XAER_DUPID, -8): Start of a branch that exists.
	XAErrDupID = &XAError{Code: -8}
	// XARBOther (XA_RBOTHER, 104): rolled back.
	XARBOther = &XAError{Code: protocol.XARBOther}
	// XARBTimeout (XA_RBTIMEOUT, 106): rolled back after its timeout.
	XARBTimeout = &XAError{Code: protocol.XARBTimeout}
	// XAHeurRB (XA_HEURRB, 6): an operator rolled it back; Forget it.
	XAHeurRB = &XAError{Code: protocol.XAHeurRB}
	// XAHeurCom (XA_HEURCOM, 7): an operator committed it; Forget it.
	XAHeurCom = &XAError{Code: protocol.XAHeurCom}
	// XAHeurHaz (XA_HEURHAZ, 8): heuristic hazard.
	XAHeurHaz = &XAError{Code: protocol.XAHeurHaz}
)

// Prepare votes.
const (
	XAOK       = protocol.XAOK       // prepared: commit or roll back later
	XAReadOnly = protocol.XAReadOnly // nothing was sent: the branch is finished
)

// XID identifies a branch of a global transaction (X/Open XID).
type XID struct {
	FormatID        int32
	GlobalID        []byte // gtrid, at most 64 bytes
	BranchQualifier []byte // bqual, at most 64 bytes
}

// String returns "<formatId>:<hex gtrid>:<hex bqual>".
func (x XID) String() string {
	return strconv.Itoa(int(x.FormatID)) + ":" + fmt.Sprintf("%x:%x", x.GlobalID, x.BranchQualifier)
}

// Equal reports whether two XIDs are the same.
func (x XID) Equal(y XID) bool {
	return x.FormatID == y.FormatID && string(x.GlobalID) == string(y.GlobalID) &&
		string(x.BranchQualifier) == string(y.BranchQualifier)
}

// XAOptions choose an XA resource's broker and name.
type XAOptions struct {
	// Broker is the broker address (host:port or meta://host:port); it wins
	// over Topic.
	Broker string
	// Topic: the broker of the partition the partitioner picks for it.
	// Pin by Broker when a TM must find the same resource after a restart.
	Topic string
	// Name is the unique qualifier of the branch keys: it must identify
	// this resource manager (letters, digits, '.', '_', '-'; no ':').
	// Default: the broker address with ':' replaced by '_'. A TM that
	// recovers after a crash must use the same name.
	Name string
	// Timeout of a branch not yet prepared (rounded up to seconds, capped
	// by the broker's maxTxTimeoutInSeconds; 0 = no timeout, as in MetaQ).
	Timeout time.Duration
}

// XAResource is one broker as an XA resource manager. Safe for concurrent
// use.
type XAResource struct {
	p       *Producer
	addr    string
	name    string
	timeout int32

	mu      sync.Mutex      // guards started
	started map[string]bool // keys Started here and not finished yet
}

// XAResource returns the XA resource of a broker (it connects at once).
func (p *Producer) XAResource(ctx context.Context, opts XAOptions) (*XAResource, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	secs, err := timeoutSecs(opts.Timeout)
	if err != nil {
		return nil, err
	}
	addr, err := p.txBroker(ctx, opts.Broker, opts.Topic)
	if err != nil {
		return nil, err
	}
	if addr == "" {
		return nil, fmt.Errorf("producer: XAResource: %w (set XAOptions.Broker or Topic)", ErrTxNoBroker)
	}
	name := opts.Name
	if name == "" {
		name = strings.NewReplacer(":", "_", "[", "", "]", "").Replace(addr)
	}
	if !validXAName(name) {
		return nil, fmt.Errorf("producer: XAResource: name %q: want letters, digits, '.', '_', '-'", name)
	}
	if _, err := p.pool.Get(ctx, addr); err != nil {
		return nil, fmt.Errorf("producer: XAResource: connect to %s: %w", addr, err)
	}
	return &XAResource{p: p, addr: addr, name: name, timeout: secs, started: map[string]bool{}}, nil
}

func validXAName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Broker returns the resource's broker address.
func (r *XAResource) Broker() string { return r.addr }

// Name returns the unique qualifier of the resource's branch keys.
func (r *XAResource) Name() string { return r.name }

// Key returns the wire key of xid's branch on this resource.
func (r *XAResource) Key(xid XID) string {
	return protocol.XATxKey(xid.FormatID, xid.GlobalID, xid.BranchQualifier, r.name).String()
}

// IsSameRM reports whether two resources are the same resource manager
// (same broker and name), as JTA's isSameRM.
func (r *XAResource) IsSameRM(o *XAResource) bool {
	return o != nil && r.addr == o.addr && r.name == o.name
}

func validXID(xid XID) error {
	if len(xid.GlobalID) == 0 || len(xid.GlobalID) > 64 || len(xid.BranchQualifier) > 64 {
		return fmt.Errorf("producer: XID %s: gtrid must be 1..64 bytes and bqual at most 64: %w", xid, XAErrProto)
	}
	return nil
}

// call sends one transaction request about xid and returns the 200 body.
func (r *XAResource) call(ctx context.Context, xid XID, typ protocol.TxType, timeout int32) (string, error) {
	if err := validXID(xid); err != nil {
		return "", err
	}
	return r.do(ctx, &protocol.TransactionRequest{TxKey: r.Key(xid), SessionID: r.p.SessionID(), Type: typ, Timeout: timeout})
}

func (r *XAResource) do(ctx context.Context, req *protocol.TransactionRequest) (string, error) {
	c, err := r.p.pool.Get(ctx, r.addr)
	if err != nil {
		return "", fmt.Errorf("producer: XA %s %s on %s: %w", req.Type, req.TxKey, r.addr, err)
	}
	body, err := r.p.txDo(ctx, c, req)
	if err != nil {
		return "", fmt.Errorf("producer: XA %s %s on %s: %w", req.Type, req.TxKey, r.addr, err)
	}
	return body, nil
}

// Start begins xid's branch (TMNOFLAGS; joining or resuming is not
// supported). XAErrDupID when this resource started it and has not
// finished it: the broker, like MetaQ's, answers a BEGIN of a known branch
// with success, so the check is the client's, as in MetaQ's
// TransactionContext.start.
func (r *XAResource) Start(ctx context.Context, xid XID) error {
	key := r.Key(xid)
	r.mu.Lock()
	dup := r.started[key]
	r.mu.Unlock()
	if dup {
		return fmt.Errorf("producer: XA start of %s: %w", key, XAErrDupID)
	}
	if _, err := r.call(ctx, xid, protocol.TxBegin, r.timeout); err != nil {
		return err
	}
	r.mu.Lock()
	r.started[key] = true
	r.mu.Unlock()
	return nil
}

// finished forgets a branch this resource started once a Commit, Rollback
// or read-only Prepare ended it (err nil), or the broker said it is gone,
// rolled back or heuristically decided.
func (r *XAResource) finished(xid XID, err error) {
	if err != nil && !slices.ContainsFunc([]error{XAErrNOTA, XARBOther, XARBTimeout, XAHeurRB, XAHeurCom, XAHeurHaz},
		func(t error) bool { return errors.Is(err, t) }) {
		return
	}
	r.mu.Lock()
	delete(r.started, r.Key(xid))
	r.mu.Unlock()
}

// End ends the association of the caller with the branch: the broker
// detaches it, so a later Send under xid fails (XAErrProto) while Prepare,
// Commit and Rollback work as before. The broker sends no reply to END, so
// End does not wait for one (as MetaQ's TransactionContext.end); it waits
// only for a connection to the broker (ctx), and requests sent after it on
// this resource reach the broker after the END.
func (r *XAResource) End(ctx context.Context, xid XID) error {
	if err := validXID(xid); err != nil {
		return err
	}
	c, err := r.p.pool.Get(ctx, r.addr)
	if err == nil {
		err = c.Send(conn.ProtocolRequest(&protocol.TransactionRequest{TxKey: r.Key(xid), SessionID: r.p.SessionID(),
			Type: protocol.TxEnd}))
	}
	if err != nil {
		return fmt.Errorf("producer: XA %s %s on %s: %w", protocol.TxEnd, r.Key(xid), r.addr, err)
	}
	return nil
}

// Send puts msg into xid's branch and waits for the acknowledgement. The
// topic must have a partition on this resource's broker (ErrTxWrongBroker).
// Result.Offset is -1.
func (r *XAResource) Send(ctx context.Context, xid XID, msg Message) (Result, error) {
	if err := validXID(xid); err != nil {
		return Result{}, err
	}
	data, flag, err := r.p.putData(&msg)
	if err != nil {
		return Result{}, err
	}
	part, err := r.p.txPartition(ctx, &msg, r.addr)
	if err != nil {
		return Result{}, err
	}
	c, err := r.p.pool.Get(ctx, r.addr)
	if err != nil {
		return Result{}, fmt.Errorf("producer: XA send to %s: %w", r.addr, err)
	}
	rep, err := c.Do(ctx, conn.ProtocolRequest(&protocol.PutRequest{Topic: msg.Topic, Partition: int32(part.Partition), Flag: flag,
		Checksum: protocol.Checksum(data), TxKey: r.Key(xid), Data: data}))
	if err == nil {
		pr := protocol.Reply{Code: rep.Code, Body: rep.Body}
		err = replyError(&pr)
	}
	if err != nil {
		return Result{}, fmt.Errorf("producer: XA send of %s to %s partition %s: %w", r.Key(xid), r.addr, part, err)
	}
	id, _, off, err := protocol.ParsePutResult(rep.Body)
	if err != nil {
		return Result{}, fmt.Errorf("producer: XA send to %s: %w", r.addr, err)
	}
	return Result{MsgID: id, Partition: part, Offset: off}, nil
}

// Prepare makes the branch durable as prepared and returns its vote: XAOK,
// or XAReadOnly when nothing was sent (the branch is then finished: do not
// commit it).
func (r *XAResource) Prepare(ctx context.Context, xid XID) (int, error) {
	body, err := r.call(ctx, xid, protocol.TxPrepare, 0)
	if err != nil {
		return 0, err
	}
	v, perr := strconv.Atoi(strings.TrimSpace(body))
	if perr != nil || (v != XAOK && v != XAReadOnly) {
		return 0, fmt.Errorf("producer: XA prepare of %s: unexpected vote %q", r.Key(xid), body)
	}
	if v == XAReadOnly {
		r.finished(xid, nil)
	}
	return v, nil
}

// Commit commits the branch: two-phase (it must be prepared) or, with
// onePhase, without a prepare. A replayed commit of a committed branch
// succeeds; XAErrNOTA after a replay means it completed and was forgotten.
func (r *XAResource) Commit(ctx context.Context, xid XID, onePhase bool) error {
	typ := protocol.TxCommitTwoPhase
	if onePhase {
		typ = protocol.TxCommitOnePhase
	}
	_, err := r.call(ctx, xid, typ, 0)
	r.finished(xid, err)
	return err
}

// Rollback rolls the branch back; a replayed rollback succeeds.
func (r *XAResource) Rollback(ctx context.Context, xid XID) error {
	_, err := r.call(ctx, xid, protocol.TxRollback, 0)
	r.finished(xid, err)
	return err
}

// Forget forgets a heuristically completed branch.
func (r *XAResource) Forget(ctx context.Context, xid XID) error {
	_, err := r.call(ctx, xid, protocol.TxForget, 0)
	return err
}

// Recover lists the prepared and heuristically completed branches of this
// resource manager (its name).
func (r *XAResource) Recover(ctx context.Context) ([]XID, error) {
	body, err := r.do(ctx, &protocol.TransactionRequest{TxKey: "null", SessionID: r.p.SessionID(),
		Type: protocol.TxRecover, UniqueQualifier: r.name})
	if err != nil {
		return nil, err
	}
	return parseRecover(body, r.name)
}

// parseRecover parses a RECOVER body (keys joined by CRLF), keeping the
// XA keys with unique qualifier name ("" = all).
func parseRecover(body, name string) ([]XID, error) {
	var out []XID
	for _, line := range strings.Split(body, "\r\n") {
		if line == "" {
			continue
		}
		k, err := protocol.ParseTxKey(line)
		if err != nil {
			return out, fmt.Errorf("producer: XA recover: %w", err)
		}
		if k.Kind != protocol.TxKeyXA || (name != "" && k.UniqueQualifier != name) {
			continue
		}
		out = append(out, XID{FormatID: k.FormatID, GlobalID: k.GlobalTxID, BranchQualifier: k.BranchQualifier})
	}
	return out, nil
}

// XIDFromKey parses a branch key (XID:...) into the XID and its unique
// qualifier.
func XIDFromKey(key string) (XID, string, error) {
	k, err := protocol.ParseTxKey(key)
	if err != nil {
		return XID{}, "", err
	}
	if k.Kind != protocol.TxKeyXA {
		return XID{}, "", errors.New("producer: not an XA key: " + key)
	}
	return XID{FormatID: k.FormatID, GlobalID: k.GlobalTxID, BranchQualifier: k.BranchQualifier}, k.UniqueQualifier, nil
}
