package conn

import (
	"context"
	"fmt"
	"strconv"

	"github.com/metaq-go/metaq/protocol"
)

// Reply is a reply copied out of the read buffer (safe to keep).
type Reply struct {
	Verb protocol.Verb // protocol.VerbResult or protocol.VerbValue
	Code int32
	Body []byte
}

// ProtocolRequest adapts a protocol request (*PutRequest, *GetRequest,
// *OffsetRequest, *VersionRequest, *StatsRequest, *TransactionRequest,
// *ReplicateRequest) to a
// Request: the connection's opaque replaces the request's own. Other
// requests (quit, sync) cannot be correlated: Start refuses them.
func ProtocolRequest(r protocol.Request) Request {
	switch r.(type) {
	case *protocol.PutRequest, *protocol.GetRequest, *protocol.OffsetRequest,
		*protocol.VersionRequest, *protocol.StatsRequest, *protocol.TransactionRequest,
		*protocol.ReplicateRequest:
		return protoReq{r}
	}
	return badReq{fmt.Errorf("conn: a %T cannot be sent with an opaque", r)}
}

// badReq is a request Start refuses with err.
type badReq struct{ err error }

func (badReq) AppendRequest(dst []byte, _ int32) []byte { return dst }

type protoReq struct{ r protocol.Request }

func (p protoReq) AppendRequest(dst []byte, opaque int32) []byte {
	switch r := p.r.(type) {
	case *protocol.PutRequest:
		cp := *r
		cp.OpaqueID = opaque
		return cp.AppendTo(dst)
	case *protocol.GetRequest:
		cp := *r
		cp.OpaqueID = opaque
		return cp.AppendTo(dst)
	case *protocol.OffsetRequest:
		cp := *r
		cp.OpaqueID = opaque
		return cp.AppendTo(dst)
	case *protocol.VersionRequest:
		return protocol.AppendVersion(dst, opaque)
	case *protocol.StatsRequest:
		return protocol.AppendStatsRequest(dst, r.Item, opaque)
	case *protocol.TransactionRequest:
		cp := *r
		cp.OpaqueID = opaque
		return cp.AppendTo(dst)
	case *protocol.ReplicateRequest:
		cp := *r
		cp.OpaqueID = opaque
		return cp.AppendTo(dst)
	}
	return dst // unreachable: ProtocolRequest admits only the types above
}

// waiter is the Handler of a synchronous call.
type waiter struct{ ch chan result }

type result struct {
	rep Reply
	err error
}

func (w waiter) HandleReply(rep *protocol.Reply, err error) {
	if err != nil {
		w.ch <- result{err: err}
		return
	}
	w.ch <- result{rep: Reply{Verb: rep.Verb, Code: rep.Code, Body: append([]byte(nil), rep.Body...)}}
}

// Do sends req and waits for its reply or the end of ctx. Any reply is
// returned as is, whatever its code (a get's 301 and 404 are answers, not
// failures). When ctx ends first the request stays in flight and its reply is
// dropped.
func (c *Conn) Do(ctx context.Context, req Request) (Reply, error) {
	w := waiter{ch: make(chan result, 1)}
	if err := c.Start(req, w); err != nil {
		return Reply{}, err
	}
	select {
	case r := <-w.ch:
		return r.rep, r.err
	case <-ctx.Done():
		return Reply{}, ctx.Err()
	}
}

// PutResult is the body of a 200 reply to a put.
type PutResult struct {
	MsgID     int64
	Partition int32
	Offset    int64
}

// Put sends one put and waits for it; a non-200 reply is a *ServerError.
func (c *Conn) Put(ctx context.Context, r *protocol.PutRequest) (PutResult, error) {
	body, err := c.doOK(ctx, protoReq{r})
	if err != nil {
		return PutResult{}, err
	}
	id, part, off, err := protocol.ParsePutResult(body)
	if err != nil {
		return PutResult{}, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return PutResult{MsgID: id, Partition: part, Offset: off}, nil
}

// Get sends a get and returns the reply: VerbValue with a message set, or a
// result (301 with an offset to use, 404 when caught up, other codes).
func (c *Conn) Get(ctx context.Context, r *protocol.GetRequest) (Reply, error) {
	return c.Do(ctx, protoReq{r})
}

// Offset asks the broker for a valid offset near r.Offset (PROTOCOL.md §5).
func (c *Conn) Offset(ctx context.Context, r *protocol.OffsetRequest) (int64, error) {
	body, err := c.doOK(ctx, protoReq{r})
	if err != nil {
		return 0, err
	}
	off, err := strconv.ParseInt(string(body), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: offset body %q", ErrProtocol, body)
	}
	return off, nil
}

// Version returns the broker's version string.
func (c *Conn) Version(ctx context.Context) (string, error) {
	body, err := c.doOK(ctx, versionReq{})
	return string(body), err
}

// StatsBody sends `stats <item>` and returns the body of the 200 reply as
// the broker wrote it (PROTOCOL.md §6): STATS/END-framed lines for most
// items (Stats parses them), the raw bytes of the broker's configuration
// file for "config".
func (c *Conn) StatsBody(ctx context.Context, item string) ([]byte, error) {
	return c.doOK(ctx, protoReq{&protocol.StatsRequest{Item: item}})
}

// Stats sends `stats <item>` and returns the reply's lines (PROTOCOL.md §6).
// The empty item asks for the general counters; a broker takes an item it
// does not know as a topic name (and may answer no lines). A body that is not STATS/END-framed (e.g. the "config" item's)
// is ErrProtocol: use StatsBody for that.
func (c *Conn) Stats(ctx context.Context, item string) ([]protocol.StatsLine, error) {
	body, err := c.StatsBody(ctx, item)
	if err != nil {
		return nil, err
	}
	lines, err := protocol.ParseStatsBody(body)
	if err != nil {
		return nil, fmt.Errorf("%w: stats %q: %w", ErrProtocol, item, err)
	}
	return lines, nil
}

// doOK sends req and returns the body of its 200 reply; any other code is a
// *ServerError.
func (c *Conn) doOK(ctx context.Context, req Request) ([]byte, error) {
	rep, err := c.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	if rep.Code != protocol.CodeOK {
		return nil, &ServerError{Code: rep.Code, Msg: string(rep.Body)}
	}
	return rep.Body, nil
}
