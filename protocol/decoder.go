package protocol

import (
	"bytes"
	"fmt"
	"math"
)

// Verb identifies a request (or reply) form.
type Verb uint8

// Verbs of the protocol.
const (
	VerbPut Verb = iota + 1
	VerbGet
	VerbOffset
	VerbVersion
	VerbStats
	VerbQuit
	VerbTransaction
	VerbSync
	VerbResult // reply
	VerbValue  // reply
	VerbReplicate
	VerbAuth // ours: SASL authentication
)

var verbNames = [...]string{"", "put", "get", "offset", "version", "stats", "quit",
	"transaction", "sync", "result", "value", "replicate", "auth"}

func (v Verb) String() string {
	if int(v) < len(verbNames) && v != 0 {
		return verbNames[v]
	}
	return "unknown"
}

// NoOpaque is the opaque of a version/stats request sent without one; the
// reply carries it.
const NoOpaque int32 = math.MaxInt32

// Defaults for Config.
const (
	DefaultMaxLineLength  = 1024
	DefaultMaxMessageSize = 4 << 20
	// MetaQClientMaxMessageSize is the largest put data (message payload,
	// attribute included) MetaQ 1.4's Java client can read back:
	// MessageUtils.MAX_READ_BUFFER_SIZE, 2097152 unless the client JVM sets
	// -Dnotify.remoting.max_read_buffer_size. A larger message makes its
	// consumer throw InvalidMessageException on every fetch of it, so it is
	// stuck at that offset for ever. The broker's maxMessageSize defaults to it.
	MetaQClientMaxMessageSize = 2 << 20
	// DefaultMaxReplyBody bounds a result/value body on the client side.
	DefaultMaxReplyBody = 64 << 20
	// DefaultMaxDiscardSize is the largest declared body over MaxBodySize
	// that a request decoder reads and throws away to keep the connection
	// (see Config.MaxDiscardSize).
	DefaultMaxDiscardSize = 64 << 20
	maxTokens             = 9
	maxErrToken           = 48
)

// Request is a decoded request. The concrete types are *PutRequest,
// *GetRequest, *OffsetRequest, *VersionRequest, *StatsRequest, *QuitRequest,
// *TransactionRequest, *SyncRequest and *ReplicateRequest.
type Request interface {
	Verb() Verb
	// Opaque returns the request id to echo in the reply (NoOpaque when the
	// request carries none).
	Opaque() int32
	// AppendTo appends the wire form of the request (line and body).
	AppendTo(dst []byte) []byte
}

// Config bounds what a decoder accepts. Zero fields take the defaults.
type Config struct {
	// MaxLineLength is the longest command line accepted, CRLF included.
	// Default DefaultMaxLineLength.
	MaxLineLength int
	// MaxBodySize is the largest body a line may declare (the broker's
	// maxMessageSize for requests). Default DefaultMaxMessageSize for
	// requests, DefaultMaxReplyBody for replies.
	MaxBodySize int
	// MaxDiscardSize bounds the body a request may declare over MaxBodySize
	// and still cost only its own request: the decoder answers it with a
	// non-fatal KindBodyTooLarge error as soon as its line arrives, then
	// reads and throws its body away as it streams in (never buffering it),
	// and decodes the next request. MetaQ's Python, Ruby and .NET producers
	// write the whole put before reading the reply and cannot survive a
	// closed connection. A declared body over MaxDiscardSize is fatal.
	// Default DefaultMaxDiscardSize; negative: every oversized body is fatal.
	// Reply decoders never discard.
	MaxDiscardSize int
}

func (c Config) withDefaults(body int) Config {
	if c.MaxLineLength <= 0 {
		c.MaxLineLength = DefaultMaxLineLength
	}
	if c.MaxBodySize <= 0 {
		c.MaxBodySize = body
	}
	if c.MaxDiscardSize == 0 {
		c.MaxDiscardSize = DefaultMaxDiscardSize
	}
	return c
}

// Decoder is a streaming request decoder for one connection. It is not safe
// for concurrent use.
//
// Call Decode with all bytes currently buffered for the connection. It returns
// one of:
//
//   - req != nil, n > 0, err == nil: one complete request; discard n bytes.
//   - req == nil, n == 0, err == nil: need more bytes; call again when more
//     have arrived (Pending tells how many are needed when known).
//   - err is a *Error with Fatal == false: n > 0 bytes of one well-framed but
//     invalid request were consumed; reply err.Code/err.Msg with err.Opaque
//     and continue. For KindBodyTooLarge only the line was consumed: the
//     declared body is discarded by the next calls (see Config.MaxDiscardSize).
//   - req == nil, n > 0, err == nil: n bytes of the body of a request refused
//     with KindBodyTooLarge were skipped; discard them and call again.
//   - err is a *Error with Fatal == true: reply (unless NoReply) and close.
//     Every later call returns the same error.
//
// The returned request is owned by the decoder and is overwritten by the next
// call; its Data (put, sync) aliases buf. Copy what must outlive the next
// Decode call or the discarding of buf; string fields are safe to keep.
//
// In a gnet OnTraffic handler:
//
//	for {
//		buf, _ := c.Peek(-1)           // all buffered bytes
//		req, n, err := dec.Decode(buf)
//		if err != nil {
//			var pe *protocol.Error
//			errors.As(err, &pe)
//			if !pe.NoReply {
//				reply(pe.AppendReply(out))
//			}
//			if pe.Fatal {
//				return gnet.Close
//			}
//			c.Discard(n)
//			continue
//		}
//		if n == 0 {
//			return gnet.None // wait for more bytes
//		}
//		if req == nil {        // part of a refused body, thrown away
//			c.Discard(n)
//			continue
//		}
//		handle(req)         // copy req.Data first if handled asynchronously
//		c.Discard(n)
//	}
type Decoder struct {
	cfg    Config
	toks   [maxTokens][]byte
	ntok   int
	err    *Error
	need   int
	skip   int      // bytes of a refused body still to throw away
	intern interner // topics, groups, items, session ids
	txKeys interner // validated transaction keys

	put  PutRequest
	get  GetRequest
	off  OffsetRequest
	ver  VersionRequest
	st   StatsRequest
	quit QuitRequest
	repl ReplicateRequest
	tx   TransactionRequest
	sync SyncRequest
}

// NewDecoder returns a request decoder with the given limits.
func NewDecoder(cfg Config) *Decoder {
	return &Decoder{cfg: cfg.withDefaults(DefaultMaxMessageSize)}
}

// Config returns the effective limits.
func (d *Decoder) Config() Config { return d.cfg }

// Pending returns the total number of buffered bytes the next frame needs,
// when the last Decode call reported "need more" for a frame whose size is
// known (a put or sync waiting for its body); otherwise 0.
func (d *Decoder) Pending() int { return d.need }

// Decode decodes the next request from buf. See the Decoder documentation.
func (d *Decoder) Decode(buf []byte) (Request, int, error) {
	if d.err != nil {
		return nil, 0, d.err
	}
	d.need = 0
	if d.skip > 0 {
		k := min(d.skip, len(buf))
		d.skip -= k
		return nil, k, nil
	}
	line, n, e := scanLine(buf, d.cfg.MaxLineLength)
	if e != nil {
		return nil, 0, d.fail(e)
	}
	if n == 0 {
		return nil, 0, nil
	}
	d.tokenize(line)
	req, total, e := d.dispatch(buf, n)
	if e != nil {
		if e.Fatal {
			return nil, 0, d.fail(e)
		}
		return nil, total, e
	}
	return req, total, nil
}

func (d *Decoder) fail(e *Error) *Error {
	e.Fatal = true
	d.err = e
	return e
}

func (d *Decoder) dispatch(buf []byte, n int) (Request, int, *Error) {
	switch string(d.toks[0]) {
	case "put":
		return d.decodePut(buf, n)
	case "sync":
		return d.decodeSync(buf, n)
	case "get":
		return d.decodeGet(n)
	case "offset":
		return d.decodeOffset(n)
	case "version":
		return d.decodeVersion(n)
	case "stats":
		return d.decodeStats(n)
	case "quit":
		return d.decodeQuit(n)
	case "transaction":
		return d.decodeTransaction(n)
	case "replicate":
		return d.decodeReplicate(n)
	case "auth":
		return d.decodeAuth(n)
	}
	msg := "empty command line"
	if len(d.toks[0]) > 0 {
		msg = fmt.Sprintf("unknown command %s", quoteToken(d.toks[0]))
	}
	return nil, n, &Error{Kind: KindUnknownVerb, Code: CodeInternal, Msg: msg, Fatal: true, NoReply: true}
}

// scanLine finds the first line of buf. It returns the line without CRLF and
// the number of bytes including CRLF, or n == 0 when no complete line is
// buffered yet.
func scanLine(buf []byte, max int) ([]byte, int, *Error) {
	win := buf
	if len(win) > max {
		win = win[:max]
	}
	i := bytes.IndexByte(win, '\n')
	if i < 0 {
		if len(buf) >= max {
			return nil, 0, &Error{Kind: KindLineTooLong, Code: CodeInternal,
				Msg: fmt.Sprintf("command line longer than %d bytes", max)}
		}
		return nil, 0, nil
	}
	if i == 0 || buf[i-1] != '\r' {
		return nil, 0, &Error{Kind: KindBadLineEnding, Code: CodeInternal,
			Msg: "command line must end with CRLF, got a bare LF"}
	}
	line := buf[:i-1]
	for j, c := range line {
		if c < 0x20 || c == 0x7f {
			return nil, 0, &Error{Kind: KindControlChar, Code: CodeInternal,
				Msg: fmt.Sprintf("control character 0x%02x at byte %d of the command line", c, j)}
		}
	}
	return line, i + 1, nil
}

// tokenize splits line on single spaces into d.toks. Empty tokens are kept
// (the verb parsers reject them); more than maxTokens tokens leave ntok ==
// maxTokens+1.
func (d *Decoder) tokenize(line []byte) {
	d.ntok = 0
	for {
		i := bytes.IndexByte(line, ' ')
		if d.ntok == maxTokens {
			d.ntok++
			return
		}
		if i < 0 {
			d.toks[d.ntok] = line
			d.ntok++
			return
		}
		d.toks[d.ntok] = line[:i]
		d.ntok++
		line = line[i+1:]
	}
}

// form names the tokens of one line form, verb first.
type form struct {
	verb  Verb
	names []string
}

func (f *form) name(i int) string {
	if i < len(f.names) {
		return f.names[i]
	}
	return "extra"
}

// tokenErr builds the error for token i (0 is the verb).
func (d *Decoder) tokenErr(f *form, k ErrorKind, i int, what string) *Error {
	return &Error{Kind: k, Code: CodeInternal, Verb: f.verb, Opaque: d.lastOpaque(),
		Msg: fmt.Sprintf("%s: token %d (%s) %s %s", f.verb, i+1, f.name(i), quoteToken(d.toks[i]), what)}
}

func (d *Decoder) countErr(v Verb, want string) *Error {
	got := fmt.Sprintf("%d", d.ntok)
	if d.ntok > maxTokens {
		got = fmt.Sprintf("more than %d", maxTokens)
	}
	return &Error{Kind: KindTokenCount, Code: CodeInternal, Verb: v, Opaque: d.lastOpaque(),
		Msg: fmt.Sprintf("%s: expected %s tokens, got %s", v, want, got)}
}

func (d *Decoder) lastOpaque() int32 {
	if d.ntok > maxTokens {
		return 0
	}
	v, st := parseDec(d.toks[d.ntok-1], math.MinInt32, math.MaxInt32)
	if st != numOK {
		return 0
	}
	return int32(v)
}

// checkSpacing rejects empty tokens from index from on (skip may name one
// index allowed to be empty, or -1).
func (d *Decoder) checkSpacing(v Verb, skip int) *Error {
	for i := 1; i < d.ntok && i < maxTokens; i++ {
		if len(d.toks[i]) == 0 && i != skip {
			return &Error{Kind: KindBadSpacing, Code: CodeInternal, Verb: v, Opaque: d.lastOpaque(),
				Msg: fmt.Sprintf("%s: empty token %d (tokens must be separated by exactly one space)", v, i+1)}
		}
	}
	return nil
}

type numStatus uint8

const (
	numOK numStatus = iota
	numSyntax
	numRange
)

// parseDec parses a canonical decimal integer: "0", or an optional '-'
// followed by a non-zero digit and more digits ("-0", "+1", "01" are not
// canonical), within [min, max].
func parseDec(b []byte, min, max int64) (int64, numStatus) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	if len(b) == 0 || (b[0] == '0' && (len(b) > 1 || neg)) {
		return 0, numSyntax
	}
	var u uint64
	overflow := false
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, numSyntax
		}
		if u > (math.MaxUint64-9)/10 {
			overflow = true
			continue
		}
		u = u*10 + uint64(c-'0')
	}
	if overflow || u > 1<<63 {
		return 0, numRange
	}
	var v int64
	if neg {
		v = int64(-u) // u <= 1<<63
		if u == 1<<63 {
			v = math.MinInt64
		}
	} else {
		if u > math.MaxInt64 {
			return 0, numRange
		}
		v = int64(u)
	}
	if v < min || v > max {
		return 0, numRange
	}
	return v, numOK
}

func parseInt32(b []byte) (int32, bool) {
	v, st := parseDec(b, math.MinInt32, math.MaxInt32)
	return int32(v), st == numOK
}

func (d *Decoder) int32At(f *form, i int) (int32, *Error) {
	v, err := d.intAt(f, i, math.MinInt32, math.MaxInt32, "int32")
	return int32(v), err
}

func (d *Decoder) int64At(f *form, i int) (int64, *Error) {
	return d.intAt(f, i, math.MinInt64, math.MaxInt64, "int64")
}

func (d *Decoder) intAt(f *form, i int, min, max int64, typ string) (int64, *Error) {
	v, st := parseDec(d.toks[i], min, max)
	switch st {
	case numSyntax:
		return 0, d.tokenErr(f, KindBadNumber, i, "is not a number")
	case numRange:
		return 0, d.tokenErr(f, KindNumberRange, i, "is out of range for "+typ)
	}
	return v, nil
}

// quoteToken quotes a token for an error message, truncating long ones.
func quoteToken(b []byte) string {
	if len(b) > maxErrToken {
		return fmt.Sprintf("%q...", b[:maxErrToken])
	}
	return fmt.Sprintf("%q", b)
}

// ValidGroup reports whether s is an acceptable consumer group name:
// non-empty, no spaces and no control characters.
func ValidGroup[T ~string | ~[]byte](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

func (d *Decoder) topicAt(f *form, i int) (string, *Error) {
	if err := ValidTopic(d.toks[i]); err != nil {
		return "", d.tokenErr(f, KindBadValue, i, "is not a valid topic name: "+err.(*TopicNameError).Reason+"; "+TopicRule)
	}
	return d.intern.get(d.toks[i]), nil
}

// interner turns repeated byte tokens (topics, groups, keys) into strings
// without allocating after the first time. It is bounded (internMax entries
// of at most internMaxLen bytes, then it starts over) so that a client
// sending ever new names cannot grow it.
type interner struct {
	m map[string]string
}

const (
	internMax    = 256
	internMaxLen = 160
)

func (in *interner) get(b []byte) string {
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	if len(b) > internMaxLen {
		return string(b)
	}
	if in.m == nil || len(in.m) >= internMax {
		in.m = make(map[string]string)
	}
	s := string(b)
	in.m[s] = s
	return s
}

// appendInt appends ' ' and a decimal number.
func appendInt(dst []byte, v int64) []byte {
	dst = append(dst, ' ')
	return appendDec(dst, v)
}

func appendStr(dst []byte, s string) []byte {
	dst = append(dst, ' ')
	return append(dst, s...)
}

func appendCRLF(dst []byte) []byte { return append(dst, '\r', '\n') }
