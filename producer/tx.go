package producer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// Transactions (PROTOCOL.md §7), client side.
//
// A local transaction (Begin) is pinned to one broker and to one connection:
// the broker binds it to the connection that began it and rolls it back when
// that connection closes. Its key is TX:<sessionId>:<n>, sessionId unique
// per Producer, n counting the producer's transactions. Its messages are
// invisible until Commit and appended atomically per partition then; a
// transaction never spans brokers, so sending a message of a topic the
// pinned broker does not serve fails with ErrTxWrongBroker.

// Sentinel errors of transactions (test with errors.Is).
var (
	// ErrTxWrongBroker: the message's topic has no partition on the broker
	// the transaction is pinned to. Nothing was sent; the transaction stays
	// usable.
	ErrTxWrongBroker = errors.New("producer: topic not served by the transaction's broker")
	// ErrTxDone: the transaction was already committed or rolled back.
	ErrTxDone = errors.New("producer: transaction already finished")
	// ErrTxAborted: the transaction was rolled back (its connection broke, a
	// send of it failed, the broker timed it out or refused it). Nothing of
	// it is visible.
	ErrTxAborted = errors.New("producer: transaction rolled back")
	// ErrTxInDoubt: the connection broke during Commit and the outcome could
	// not be learned within ctx (the broker was unreachable or forgot it).
	ErrTxInDoubt = errors.New("producer: transaction outcome unknown")
	// ErrTxNoBroker: neither the options nor a message named a broker.
	ErrTxNoBroker = errors.New("producer: no broker for the transaction")
)

// TxOptions choose a transaction's broker and timeout. With neither Topic
// nor Broker the broker is chosen by the first message's topic.
type TxOptions struct {
	// Topic pins the transaction to the broker of the partition the
	// partitioner picks for this topic (so transactions spread over brokers).
	Topic string
	// Broker pins the transaction to a broker address (host:port or
	// meta://host:port); it wins over Topic. Topology().Brokers() maps ids
	// to addresses.
	Broker string
	// Timeout after which the broker rolls back a transaction not yet
	// committed, rounded up to seconds, capped by the broker's
	// maxTxTimeoutInSeconds (default 60 s); 0 = no timeout, as in MetaQ.
	Timeout time.Duration
}

// timeoutSecs converts a timeout to the protocol's whole seconds.
func timeoutSecs(d time.Duration) (int32, error) {
	if d < 0 {
		return 0, fmt.Errorf("producer: negative transaction timeout %v", d)
	}
	s := (d + time.Second - 1) / time.Second
	return int32(min(int64(s), math.MaxInt32)), nil
}

// newSessionID returns a random id without ':' (the key separator).
func newSessionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return "go" + strconv.FormatUint(n, 36)
}

// txState is where a Tx is in its life.
type txState uint8

const (
	txOpen txState = iota
	txCommitted
	txRolledBack
)

// Tx is a local transaction. Its methods are safe for concurrent use;
// Commit and Rollback wait for the sends in flight.
type Tx struct {
	p       *Producer
	key     string
	timeout int32

	mu      sync.Mutex // guards the fields below
	state   txState
	addr    string        // pinned broker; "" until the first message names it
	c       *conn.Conn    // the connection the broker binds the transaction to
	begun   bool          // BEGIN queued
	err     error         // first failure of a send or of BEGIN: Commit rolls back
	pending int           // BEGIN and puts awaiting their reply
	idle    chan struct{} // closed when pending drops to 0 while someone waits
	sent    int           // messages acknowledged
}

// Begin starts a local transaction. When opts names a broker (or a topic) it
// connects and queues BEGIN at once; otherwise at the first Send. BEGIN is
// pipelined with the first put: a refusal surfaces at the next Send or Commit.
func (p *Producer) Begin(ctx context.Context, opts TxOptions) (*Tx, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	secs, err := timeoutSecs(opts.Timeout)
	if err != nil {
		return nil, err
	}
	n := p.tx.seq.Add(1)
	t := &Tx{p: p, key: protocol.LocalTxKey(p.SessionID(), int64(n)).String(), timeout: secs}
	addr, err := p.txBroker(ctx, opts.Broker, opts.Topic)
	if err != nil {
		return nil, err
	}
	if addr != "" {
		t.mu.Lock()
		defer t.mu.Unlock()
		if err := t.bindLocked(ctx, addr); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// SessionID returns the producer's transaction session id: random, unique
// per Producer, the <sessionId> of its local transaction keys.
func (p *Producer) SessionID() string {
	p.tx.once.Do(func() { p.tx.sessionID = newSessionID() })
	return p.tx.sessionID
}

// txSession is a producer's transaction state (Producer.tx).
type txSession struct {
	once      sync.Once
	sessionID string
	seq       atomic.Uint64 // local transactions begun
}

// txBroker resolves a broker pin: an explicit address, or the broker of
// the partition the partitioner picks for topic; "" when neither is given.
func (p *Producer) txBroker(ctx context.Context, brokerAddr, topic string) (string, error) {
	if brokerAddr != "" {
		a, err := coordinator.ParseBrokerURI(brokerAddr)
		if err != nil {
			return "", fmt.Errorf("producer: transaction broker: %w", err)
		}
		return a, nil
	}
	if topic == "" {
		return "", nil
	}
	if err := protocol.ValidTopic(topic); err != nil {
		return "", newErr("producer: "+err.Error(), ErrInvalidMessage)
	}
	rt, err := p.routeFor(ctx, topic)
	if err != nil {
		return "", fmt.Errorf("producer: partitions of %q: %w", topic, err)
	}
	if len(rt.parts) == 0 {
		return "", newErr(fmt.Sprintf("producer: topic %q has no partitions", topic), ErrNoPartitions)
	}
	m := Message{Topic: topic}
	seq := p.seq.Add(1) - 1
	i := int(seq % uint64(len(rt.parts)))
	if !p.opts.partitioner.needsKey { // a by-key partitioner has no key here
		i = p.opts.partitioner.pick(&m, rt.parts, seq) % len(rt.parts)
	}
	return rt.parts[max(i, 0)].Addr, nil
}

// txPartition picks msg's partition among those of topic on addr.
func (p *Producer) txPartition(ctx context.Context, msg *Message, addr string) (Partition, error) {
	rt, err := p.routeFor(ctx, msg.Topic)
	if err != nil {
		return Partition{}, fmt.Errorf("producer: partitions of %q: %w", msg.Topic, err)
	}
	var mine []Partition
	for _, pt := range rt.parts {
		if pt.Addr == addr {
			mine = append(mine, pt)
		}
	}
	if len(mine) == 0 {
		return Partition{}, newErr(fmt.Sprintf("producer: topic %q has no partition on broker %s, the transaction's broker (a transaction never spans brokers)", msg.Topic, addr), ErrTxWrongBroker)
	}
	pt := p.opts.partitioner
	if pt.needsKey && len(msg.Key) == 0 {
		return Partition{}, newErr("producer: the by-key partitioner needs a message key", ErrInvalidMessage)
	}
	i := pt.pick(msg, mine, p.seq.Add(1)-1) % len(mine)
	if i < 0 {
		i += len(mine)
	}
	return mine[i], nil
}

// putData validates msg and builds its put data and flag.
func (p *Producer) putData(msg *Message) ([]byte, int32, error) {
	size := len(msg.Payload)
	if msg.Attribute != "" {
		size += 4 + len(msg.Attribute)
	}
	switch {
	case size > p.opts.maxMessageSize:
		return nil, 0, newErr(fmt.Sprintf("producer: message of %d bytes for %q exceeds the maximum message size %d", size, msg.Topic, p.opts.maxMessageSize), ErrMessageTooLarge)
	case protocol.ValidTopic(msg.Topic) != nil:
		return nil, 0, newErr("producer: "+protocol.ValidTopic(msg.Topic).Error(), ErrInvalidMessage)
	}
	if msg.Attribute == "" {
		return msg.Payload, 0, nil
	}
	return protocol.AppendPutData(make([]byte, 0, size), protocol.FlagAttribute, msg.Attribute, msg.Payload), protocol.FlagAttribute, nil
}

// Key returns the transaction key (TX:<sessionId>:<n>).
func (t *Tx) Key() string { return t.key }

// Broker returns the address the transaction is pinned to ("" before the
// first message when Begin named none).
func (t *Tx) Broker() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addr
}

// bindLocked pins t to addr's current connection and queues BEGIN.
func (t *Tx) bindLocked(ctx context.Context, addr string) error {
	c, err := t.p.pool.Get(ctx, addr)
	if err != nil {
		return fmt.Errorf("producer: transaction %s: connect to %s: %w", t.key, addr, err)
	}
	t.addr, t.c = addr, c
	req := &protocol.TransactionRequest{TxKey: t.key, SessionID: t.p.SessionID(), Type: protocol.TxBegin, Timeout: t.timeout}
	t.pending++
	if err := c.Start(conn.ProtocolRequest(req), txBeginHandler{t}); err != nil {
		t.pending--
		return fmt.Errorf("producer: transaction %s: begin on %s: %w", t.key, addr, err)
	}
	t.begun = true
	return nil
}

type txBeginHandler struct{ t *Tx }

func (h txBeginHandler) HandleReply(rep *protocol.Reply, err error) {
	if err == nil {
		err = replyError(rep)
	}
	if err != nil {
		h.t.fail(fmt.Errorf("producer: transaction %s: BEGIN: %w", h.t.key, err))
	}
	h.t.replied()
}

// fail records the first failure of t.
func (t *Tx) fail(err error) {
	t.mu.Lock()
	if t.err == nil {
		t.err = err
	}
	t.mu.Unlock()
}

// Send puts msg into the transaction and waits for the broker's
// acknowledgement. The Result's Offset is -1: the message has no place in
// the log until Commit; MsgID is the id it will have. A failed send dooms
// the transaction (Commit rolls it back), except ErrTxWrongBroker and
// invalid messages, which are refused before anything is sent.
func (t *Tx) Send(ctx context.Context, msg Message) (Result, error) {
	ch := make(chan sendResult, 1)
	t.SendAsync(ctx, msg, func(r Result, err error) { ch <- sendResult{r, err} })
	select {
	case r := <-ch:
		return r.res, r.err
	case <-ctx.Done():
		return Result{}, fmt.Errorf("producer: transaction %s: send to %q: %w", t.key, msg.Topic, ctx.Err())
	}
}

// SendAsync queues msg into the transaction and returns; cb gets the
// outcome exactly once, possibly on a connection's reader goroutine (keep
// it fast). Commit waits for every SendAsync's reply. msg.Payload must not
// change until cb runs.
func (t *Tx) SendAsync(ctx context.Context, msg Message, cb func(Result, error)) {
	if cb == nil {
		cb = func(Result, error) {}
	}
	if err := t.startPut(ctx, &msg, cb); err != nil {
		cb(Result{}, err)
	}
}

// startPut queues msg's put; on error cb is not called (the caller calls it
// outside t.mu).
func (t *Tx) startPut(ctx context.Context, msg *Message, cb func(Result, error)) error {
	data, flag, err := t.p.putData(msg)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != txOpen {
		return fmt.Errorf("producer: transaction %s: %w", t.key, ErrTxDone)
	}
	if t.addr == "" {
		addr, err := t.p.txBroker(ctx, "", msg.Topic)
		if err == nil {
			err = t.bindLocked(ctx, addr)
		}
		if err != nil {
			return err
		}
	}
	part, err := t.p.txPartition(ctx, msg, t.addr)
	if err != nil {
		return err
	}
	h := &txPutHandler{t: t, part: part, cb: cb}
	req := &protocol.PutRequest{Topic: msg.Topic, Partition: int32(part.Partition), Flag: flag,
		Checksum: protocol.Checksum(data), TxKey: t.key, Data: data}
	t.pending++
	if err := t.c.Start(conn.ProtocolRequest(req), h); err != nil {
		t.pending--
		err = t.abortedLocked(err)
		if t.err == nil {
			t.err = err
		}
		return err
	}
	return nil
}

// abortedLocked explains a connection failure: the broker rolled the
// transaction back.
func (t *Tx) abortedLocked(err error) error {
	return errors.Join(fmt.Errorf("producer: transaction %s on %s: its connection ended, the broker rolled it back: %w", t.key, t.addr, ErrTxAborted), err)
}

type txPutHandler struct {
	t    *Tx
	part Partition
	cb   func(Result, error)
}

func (h *txPutHandler) HandleReply(rep *protocol.Reply, err error) {
	t := h.t
	var res Result
	switch {
	case err != nil:
		t.mu.Lock()
		err = t.abortedLocked(err)
		t.mu.Unlock()
	default:
		if err = replyError(rep); err != nil {
			break
		}
		id, _, off, perr := protocol.ParsePutResult(rep.Body)
		if perr != nil {
			err = fmt.Errorf("%w: %w", conn.ErrProtocol, perr)
			break
		}
		res = Result{MsgID: id, Partition: h.part, Offset: off}
	}
	if err != nil {
		err = fmt.Errorf("producer: transaction %s: send to %s partition %s: %w", t.key, h.part.Addr, h.part, err)
	}
	t.mu.Lock()
	if err != nil {
		if t.err == nil {
			t.err = err
		} else if be := t.err; errors.Is(err, XAErrNOTA) {
			err = errors.Join(err, be) // the BEGIN's refusal explains it
		}
	} else {
		t.sent++
	}
	t.mu.Unlock()
	h.cb(res, err)
	t.replied()
}

// replied notes one reply of BEGIN or a put.
func (t *Tx) replied() {
	t.mu.Lock()
	t.pending--
	if t.pending == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
	t.mu.Unlock()
}

// waitSends waits for every send in flight (within ctx).
func (t *Tx) waitSends(ctx context.Context) error {
	t.mu.Lock()
	if t.pending == 0 {
		t.mu.Unlock()
		return nil
	}
	if t.idle == nil {
		t.idle = make(chan struct{})
	}
	ch := t.idle
	t.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("producer: transaction %s: waiting for its sends: %w", t.key, ctx.Err())
	}
}

// Commit waits for the sends in flight, then commits: every message of the
// transaction becomes visible at once (atomically per partition). If a
// send failed, Commit rolls back and returns ErrTxAborted with the cause.
// If the connection breaks during the commit, Commit asks the broker on a
// new connection whether it committed (the broker answers replays of a
// finished commit), and returns ErrTxInDoubt when it cannot learn it.
func (t *Tx) Commit(ctx context.Context) error {
	if err := t.waitSends(ctx); err != nil {
		return err
	}
	t.mu.Lock()
	if t.state != txOpen {
		t.mu.Unlock()
		return fmt.Errorf("producer: transaction %s: %w", t.key, ErrTxDone)
	}
	if !t.begun { // nothing was ever sent
		t.state = txCommitted
		t.mu.Unlock()
		return nil
	}
	if cause := t.err; cause != nil {
		t.mu.Unlock()
		rerr := t.Rollback(ctx)
		return errors.Join(fmt.Errorf("producer: transaction %s not committed: %w", t.key, ErrTxAborted), cause, rerr)
	}
	t.state = txCommitted
	c, addr := t.c, t.addr
	t.mu.Unlock()
	err := t.p.txCall(ctx, c, t.key, protocol.TxCommitOnePhase, 0, "")
	switch {
	case err == nil:
		return nil
	case isConnErr(err) && ctx.Err() == nil:
		return t.resolveCommit(ctx, addr, err)
	case errors.Is(err, XARBOther), errors.Is(err, XARBTimeout), errors.Is(err, XAErrNOTA):
		t.mu.Lock()
		t.state = txRolledBack
		t.mu.Unlock()
		return errors.Join(fmt.Errorf("producer: transaction %s: %w", t.key, ErrTxAborted), err)
	}
	return fmt.Errorf("producer: transaction %s: commit: %w", t.key, err)
}

// resolveCommit learns the outcome of a commit whose connection broke by
// replaying it on a new connection: 200 = committed; XA_RBOTHER = the
// broker rolled it back when the connection closed. XAER_NOTA may mean the
// broker has not processed the close yet (or restarted): retried a few times.
func (t *Tx) resolveCommit(ctx context.Context, addr string, cause error) error {
	backoff := 20 * time.Millisecond
	var last error = cause
	for attempt := 0; attempt < 6; attempt++ {
		c, err := t.p.pool.Get(ctx, addr)
		if err == nil {
			err = t.p.txCall(ctx, c, t.key, protocol.TxCommitOnePhase, 0, "")
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, XARBOther), errors.Is(err, XARBTimeout):
			t.mu.Lock()
			t.state = txRolledBack
			t.mu.Unlock()
			return errors.Join(fmt.Errorf("producer: transaction %s: %w", t.key, ErrTxAborted), cause, err)
		}
		last = err
		tm := time.NewTimer(backoff)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			return errors.Join(fmt.Errorf("producer: transaction %s: %w", t.key, ErrTxInDoubt), cause, ctx.Err())
		}
		backoff *= 2
	}
	return errors.Join(fmt.Errorf("producer: transaction %s: %w", t.key, ErrTxInDoubt), cause, last)
}

// Rollback waits for the sends in flight and discards the transaction.
// Rolling back a finished transaction returns ErrTxDone; when the
// connection is gone the broker has rolled it back already (nil).
func (t *Tx) Rollback(ctx context.Context) error {
	if err := t.waitSends(ctx); err != nil {
		return err
	}
	t.mu.Lock()
	if t.state != txOpen {
		t.mu.Unlock()
		return fmt.Errorf("producer: transaction %s: %w", t.key, ErrTxDone)
	}
	t.state = txRolledBack
	c, begun := t.c, t.begun
	t.mu.Unlock()
	if !begun {
		return nil
	}
	err := t.p.txCall(ctx, c, t.key, protocol.TxRollback, 0, "")
	switch {
	case err == nil, isConnErr(err), errors.Is(err, XARBOther), errors.Is(err, XARBTimeout), errors.Is(err, XAErrNOTA):
		// Gone one way or another: a closed connection or a timeout rolled it back.
		return nil
	}
	return fmt.Errorf("producer: transaction %s: rollback: %w", t.key, err)
}

// isConnErr reports a transport failure (the request may or may not have
// been processed).
func isConnErr(err error) bool {
	return errors.Is(err, conn.ErrConnLost) || errors.Is(err, conn.ErrClosed) || errors.Is(err, conn.ErrDial)
}

// txCall sends a transaction request on c and waits for a 200.
func (p *Producer) txCall(ctx context.Context, c *conn.Conn, key string, typ protocol.TxType, timeout int32, uq string) error {
	_, err := p.txDo(ctx, c, &protocol.TransactionRequest{TxKey: key, SessionID: p.SessionID(), Type: typ,
		Timeout: timeout, UniqueQualifier: uq})
	return err
}

// txDo sends a transaction request and returns the body of its 200 reply.
func (p *Producer) txDo(ctx context.Context, c *conn.Conn, req *protocol.TransactionRequest) (string, error) {
	rep, err := c.Do(ctx, conn.ProtocolRequest(req))
	if err != nil {
		return "", err
	}
	r := protocol.Reply{Code: rep.Code, Body: rep.Body}
	if err := replyError(&r); err != nil {
		return "", err
	}
	return string(rep.Body), nil
}

// replyError turns a non-200 reply into *XAError (when the body is an
// XAException) or *ServerError.
func replyError(rep *protocol.Reply) error {
	if rep.Code == protocol.CodeOK {
		return nil
	}
	body := string(rep.Body)
	if xe, err := protocol.ParseXAError(body); err == nil {
		return &XAError{Code: xe.Code, Msg: xe.Msg}
	}
	return &ServerError{Code: rep.Code, Msg: body}
}
