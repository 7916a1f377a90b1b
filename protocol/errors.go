package protocol

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Reply codes. They have HTTP meanings (PROTOCOL.md §2).
const (
	CodeContinue     = 100 // ours: auth exchange needs another client message; the body holds the challenge
	CodeOK           = 200 // success
	CodeMoved        = 301 // use another offset; the body holds it
	CodeBadRequest   = 400 // bad request (e.g. get with maxSize <= 0)
	CodeUnauthorized = 401 // ours: authentication required or failed (send auth)
	CodeForbidden    = 403 // partition closed by an operator
	CodeNotFound     = 404 // no such topic/partition, or no data at that offset
	CodeConflict     = 409 // ours: replicate from a follower in a newer epoch than the master's
	CodeInternal     = 500 // internal error or illegal argument
	CodeUnavailable  = 503 // busy or unsupported
	CodeTimeout      = 504 // timeout
)

// CodeInfo describes one reply code.
type CodeInfo struct {
	Code int32
	Name string
	// Retriable reports whether the same request, sent unchanged later,
	// may succeed.
	Retriable bool
}

// Codes is the table of reply codes the protocol uses.
var Codes = []CodeInfo{
	{CodeContinue, "Continue", false},
	{CodeOK, "OK", false},
	{CodeMoved, "Moved", false},
	{CodeBadRequest, "BadRequest", false},
	{CodeUnauthorized, "Unauthorized", false},
	{CodeForbidden, "Forbidden", false},
	{CodeNotFound, "NotFound", false},
	{CodeConflict, "Conflict", false},
	{CodeInternal, "InternalServerError", false},
	{CodeUnavailable, "ServiceUnavailable", true},
	{CodeTimeout, "GatewayTimeout", true},
}

// LookupCode returns the table entry for code and whether it is known.
func LookupCode(code int32) (CodeInfo, bool) {
	for _, c := range Codes {
		if c.Code == code {
			return c, true
		}
	}
	return CodeInfo{Code: code, Name: "Code" + strconv.Itoa(int(code))}, false
}

// CodeName returns the name of a reply code ("Code<n>" when unknown).
func CodeName(code int32) string {
	c, _ := LookupCode(code)
	return c.Name
}

// Retriable reports whether a request answered with code may succeed when
// retried unchanged (503 busy, 504 timeout).
func Retriable(code int32) bool {
	c, _ := LookupCode(code)
	return c.Retriable
}

// ErrorKind classifies a decoding error.
type ErrorKind uint8

// Error kinds reported by the decoders.
const (
	KindUnknownVerb   ErrorKind = iota + 1 // verb not known (or empty line): close without reply
	KindLineTooLong                        // no line end within the line limit
	KindBadLineEnding                      // line ended by a bare LF
	KindControlChar                        // NUL, CR or another control byte in the line
	KindBadSpacing                         // empty token: leading, trailing or double space
	KindTokenCount                         // missing or extra tokens
	KindBadNumber                          // not a canonical decimal number
	KindNumberRange                        // number does not fit its type
	KindBadValue                           // well-formed token with an illegal value
	KindBodyTooLarge                       // declared body larger than the limit
)

var kindNames = [...]string{
	"", "unknown verb", "line too long", "bad line ending", "control character",
	"bad spacing", "token count", "bad number", "number out of range", "bad value",
	"body too large",
}

func (k ErrorKind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return "ErrorKind(" + strconv.Itoa(int(k)) + ")"
}

// Error is a decoding error. Msg is worded to be sent back to the client as
// the body of a reply with Code.
//
// Fatal means framing is lost or the peer must be disconnected: the caller
// replies (unless NoReply) and closes the connection; the decoder refuses
// further input. A non-fatal error describes one well-framed request that the
// decoder has already skipped (the consumed count covers it): reply and keep
// reading.
type Error struct {
	Kind  ErrorKind
	Code  int32  // reply code to send
	Msg   string // human readable, safe to send to the client
	Fatal bool   // close the connection after replying
	// NoReply is set for an unknown verb: MetaQ closes the connection
	// without any reply.
	NoReply bool
	Verb    Verb // verb of the line, or 0 when unknown
	// Opaque is best effort: the last token of the line when it is a valid
	// int32, else 0 (2147483647 for version/stats without opaque).
	Opaque int32
}

func (e *Error) Error() string { return "protocol: " + e.Msg }

// AppendReply appends the result reply for e (`result <Code> <len> <Opaque>`
// with Msg as body). Callers skip it when NoReply is set.
func (e *Error) AppendReply(dst []byte) []byte {
	return AppendResultString(dst, e.Code, e.Opaque, e.Msg)
}

// Is makes errors.Is(err, &Error{Kind: k}) match any *Error of kind k.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && t.Msg == ""
}

// KindOf returns the kind of a *Error in err's chain, or 0.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// Sentinel errors of the message and key codecs.
var (
	// ErrChecksum reports a message whose stored CRC does not match its data.
	ErrChecksum = errors.New("protocol: message checksum mismatch")
	// ErrCorrupt reports a message set that cannot be a valid one.
	ErrCorrupt = errors.New("protocol: corrupt message")
	// ErrBadTxKey reports a transaction key of neither form.
	ErrBadTxKey = errors.New("protocol: bad transaction key")
	// ErrBadStats reports a stats body without STATS/END framing.
	ErrBadStats = errors.New("protocol: bad stats body")
	// ErrBadXAError reports a body that is not an XAException text.
	ErrBadXAError = errors.New("protocol: not an XAException body")
	// ErrBadPutData reports put data whose attribute header is inconsistent.
	ErrBadPutData = errors.New("protocol: bad put data")
)

// XA error codes (javax.transaction.xa.XAException) used in transaction
// replies.
const (
	XAErrNOTA     = -4  // XAER_NOTA: unknown transaction
	XAErrProto    = -6  // XAER_PROTO: routine invoked in an improper context
	XAErrRM       = -3  // XAER_RMERR: resource manager error
	XAErrRMFail   = -7  // XAER_RMFAIL: resource manager unavailable
	XARBOther     = 104 // XA_RBOTHER: rolled back, other reason
	XARBTimeout   = 106 // XA_RBTIMEOUT: rolled back after a timeout
	XAHeurRB      = 6   // XA_HEURRB: heuristically rolled back
	XAHeurCom     = 7   // XA_HEURCOM: heuristically committed
	XAHeurHaz     = 8   // XA_HEURHAZ: heuristically hazard
	XAOK          = 0   // XA_OK, prepare reply body
	XAReadOnly    = 3   // XA_RDONLY, prepare reply body
	xaErrorPrefix = "XAException:code="
)

var xaNames = map[int32]string{
	XAErrNOTA: "XAER_NOTA", XAErrProto: "XAER_PROTO", XAErrRM: "XAER_RMERR",
	XAErrRMFail: "XAER_RMFAIL", XARBOther: "XA_RBOTHER", XARBTimeout: "XA_RBTIMEOUT",
	XAHeurRB: "XA_HEURRB", XAHeurCom: "XA_HEURCOM", XAHeurHaz: "XA_HEURHAZ",
	XAOK: "XA_OK", XAReadOnly: "XA_RDONLY",
}

// XACodeName returns the symbolic name of an XA code ("XA(<n>)" if unknown).
func XACodeName(code int32) string {
	if n, ok := xaNames[code]; ok {
		return n
	}
	return "XA(" + strconv.Itoa(int(code)) + ")"
}

// XAError is the error a transaction reply carries in a 500 body:
// "XAException:code=<n>,msg=<text>".
type XAError struct {
	Code int32
	Msg  string
}

func (e *XAError) Error() string {
	return fmt.Sprintf("protocol: XA error %s (%d): %s", XACodeName(e.Code), e.Code, e.Msg)
}

// AppendXAError appends the reply body for an XA error.
func AppendXAError(dst []byte, code int32, msg string) []byte {
	dst = append(dst, xaErrorPrefix...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ",msg="...)
	return append(dst, msg...)
}

// ParseXAError parses a reply body of the form "XAException:code=<n>,msg=<text>".
// The text may contain any characters, commas included. A body without
// ",msg=" is accepted with an empty message.
func ParseXAError(body string) (*XAError, error) {
	rest, ok := strings.CutPrefix(body, xaErrorPrefix)
	if !ok {
		return nil, ErrBadXAError
	}
	num, msg, _ := strings.Cut(rest, ",msg=")
	code, ok := parseInt32([]byte(num))
	if !ok {
		return nil, fmt.Errorf("%w: code %q", ErrBadXAError, num)
	}
	return &XAError{Code: code, Msg: msg}, nil
}
