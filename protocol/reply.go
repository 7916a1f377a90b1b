package protocol

import (
	"encoding/binary"
	"fmt"
	"math"
)

// AppendResult appends `result <code> <len(body)> <opaque>\r\n<body>`.
func AppendResult(dst []byte, code, opaque int32, body []byte) []byte {
	dst = AppendResultHeader(dst, code, len(body), opaque)
	return append(dst, body...)
}

// AppendResultString is AppendResult with a string body.
func AppendResultString(dst []byte, code, opaque int32, body string) []byte {
	dst = AppendResultHeader(dst, code, len(body), opaque)
	return append(dst, body...)
}

// AppendResultHeader appends only the line of a result reply; the caller
// writes bodyLen bytes of body after it (e.g. with a vectored write).
func AppendResultHeader(dst []byte, code int32, bodyLen int, opaque int32) []byte {
	dst = append(dst, "result"...)
	dst = appendInt(dst, int64(code))
	dst = appendInt(dst, int64(bodyLen))
	dst = appendInt(dst, int64(opaque))
	return appendCRLF(dst)
}

// AppendPutResult appends the 200 reply to a put: body
// `<msgId> <partition> <offset>` (offset -1 inside a transaction).
func AppendPutResult(dst []byte, opaque int32, msgID int64, partition int32, offset int64) []byte {
	n := decLenInt(msgID) + 1 + decLenInt(int64(partition)) + 1 + decLenInt(offset)
	dst = AppendResultHeader(dst, CodeOK, n, opaque)
	dst = appendDec(dst, msgID) // the body in place: no scratch copy
	dst = appendInt(dst, int64(partition))
	return appendInt(dst, offset)
}

// ParsePutResult parses the body of a 200 put reply.
func ParsePutResult(body []byte) (msgID int64, partition int32, offset int64, err error) {
	if id, p, off, ok := parsePutResultFast(body); ok {
		return id, p, off, nil
	}
	var toks [3][]byte
	n := 0
	start := 0
	for i := 0; i <= len(body); i++ {
		if i == len(body) || body[i] == ' ' {
			if n == 3 {
				return 0, 0, 0, fmt.Errorf("protocol: put result %q: too many fields", body)
			}
			toks[n] = body[start:i]
			n++
			start = i + 1
		}
	}
	if n != 3 {
		return 0, 0, 0, fmt.Errorf("protocol: put result %q: want 3 fields", body)
	}
	id, s1 := parseDec(toks[0], -1<<63, 1<<63-1)
	p, s2 := parseDec(toks[1], -1<<31, 1<<31-1)
	off, s3 := parseDec(toks[2], -1<<63, 1<<63-1)
	if s1 != numOK || s2 != numOK || s3 != numOK {
		return 0, 0, 0, fmt.Errorf("protocol: put result %q: bad number", body)
	}
	return id, int32(p), off, nil
}

// parsePutResultFast parses the body every acknowledged put outside a
// transaction has, in one pass: three canonical non-negative decimals
// separated by single spaces (a producer parses one per message: the
// tokenizer and the general parseDec above cost ~80 ns). ok is false for
// anything else, which ParsePutResult's general path then accepts or
// rejects with its error.
func parsePutResultFast(body []byte) (msgID int64, partition int32, offset int64, ok bool) {
	var v [3]uint64
	i := 0
	for k := range v {
		if k > 0 {
			if i == len(body) || body[i] != ' ' {
				return 0, 0, 0, false
			}
			i++
		}
		start := i
		var u uint64
		// Eight digits at a time while the field has them (a message ID
		// has 19, an offset 6 to 12): 20 digits or more fail below.
		for i+8 <= len(body) && i-start <= 8 {
			x := binary.LittleEndian.Uint64(body[i:])
			if !eightDigits(x) {
				break
			}
			u = u*1e8 + eightDigitsValue(x)
			i += 8
		}
		for ; i < len(body) && body[i] != ' '; i++ {
			d := body[i] - '0'
			if d > 9 {
				return 0, 0, 0, false
			}
			u = u*10 + uint64(d)
		}
		// 19 digits never overflow a uint64; a leading 0 is canonical only alone.
		if n := i - start; n == 0 || n > 19 || (n > 1 && body[start] == '0') || u > math.MaxInt64 {
			return 0, 0, 0, false
		}
		v[k] = u
	}
	if i != len(body) || v[1] > math.MaxInt32 {
		return 0, 0, 0, false
	}
	return int64(v[0]), int32(v[1]), int64(v[2]), true
}

// AppendValue appends `value <len(data)> <opaque>\r\n<data>`.
func AppendValue(dst []byte, opaque int32, data []byte) []byte {
	dst = AppendValueHeader(dst, len(data), opaque)
	return append(dst, data...)
}

// AppendValueHeader appends only the line of a value reply, for a broker that
// writes the message set itself (e.g. vectored from the segment file).
func AppendValueHeader(dst []byte, totalLen int, opaque int32) []byte {
	dst = append(dst, "value"...)
	dst = appendInt(dst, int64(totalLen))
	dst = appendInt(dst, int64(opaque))
	return appendCRLF(dst)
}

// Reply is a decoded reply: a result (Verb == VerbResult) or a value
// (Verb == VerbValue, Code is then 200).
type Reply struct {
	Verb   Verb
	Code   int32
	Opaque int32
	// Body is the result body or the value bytes (a message set). After
	// Decode it aliases the decoder's input.
	Body []byte
}

// AppendTo appends the wire form of the reply.
func (r *Reply) AppendTo(dst []byte) []byte {
	if r.Verb == VerbValue {
		return AppendValue(dst, r.Opaque, r.Body)
	}
	return AppendResult(dst, r.Code, r.Opaque, r.Body)
}

// ReplyDecoder is the client-side streaming decoder of replies. Its contract
// is the Decoder's: (reply, n > 0, nil) for a complete reply, (nil, 0, nil)
// for "need more", and a fatal *Error (sticky) for anything malformed — a
// client cannot resynchronise and must close the connection. The returned
// reply is reused by the next call and its Body aliases buf.
type ReplyDecoder struct {
	cfg   Config
	inner Decoder
	reply Reply
	need  int
}

// NewReplyDecoder returns a reply decoder. MaxBodySize defaults to
// DefaultMaxReplyBody.
func NewReplyDecoder(cfg Config) *ReplyDecoder {
	rd := &ReplyDecoder{cfg: cfg.withDefaults(DefaultMaxReplyBody)}
	rd.cfg.MaxDiscardSize = -1 // a client cannot answer an oversized reply: always fatal
	rd.inner.cfg = rd.cfg
	return rd
}

// Pending returns the frame size the last "need more" was waiting for, when
// known, else 0.
func (rd *ReplyDecoder) Pending() int { return rd.need }

var (
	resultForm = form{VerbResult, []string{"verb", "code", "bodyLen", "opaque"}}
	valueForm  = form{VerbValue, []string{"verb", "totalLen", "opaque"}}
)

// Decode decodes the next reply from buf.
func (rd *ReplyDecoder) Decode(buf []byte) (*Reply, int, error) {
	if r, n, ok := rd.decodeResultFast(buf); ok {
		return r, n, nil
	}
	return rd.decode(buf)
}

// decodeResultFast decodes, in one pass, the reply a client gets most: a
// complete `result <code> <len> <opaque>\r\n<body>` with canonical
// non-negative numbers (the general path below costs ~90 ns: line scan,
// tokenizer, spacing check and three general integer parses, once per
// acknowledged message). ok is false for anything else, an incomplete
// frame included: decode then handles it, errors and Pending too.
func (rd *ReplyDecoder) decodeResultFast(buf []byte) (*Reply, int, bool) {
	const prefix = "result "
	if rd.inner.err != nil || len(buf) < len(prefix) || string(buf[:len(prefix)]) != prefix {
		return nil, 0, false
	}
	i := len(prefix)
	var v [3]uint64 // code, body length, opaque
	for k := range v {
		start := i
		var u uint64
		for ; i < len(buf) && i-start < 11; i++ { // 11 digits: more than an int32 has
			d := buf[i] - '0'
			if d > 9 {
				break
			}
			u = u*10 + uint64(d)
		}
		sep := byte(' ')
		if k == len(v)-1 {
			sep = '\r'
		}
		if n := i - start; n == 0 || (n > 1 && buf[start] == '0') || u > math.MaxInt32 || i == len(buf) || buf[i] != sep {
			return nil, 0, false
		}
		v[k] = u
		i++
	}
	if i == len(buf) || buf[i] != '\n' || i+1 > rd.cfg.MaxLineLength || v[1] > uint64(rd.cfg.MaxBodySize) {
		return nil, 0, false
	}
	i++
	total := i + int(v[1])
	if len(buf) < total {
		return nil, 0, false
	}
	rd.need = 0
	rd.reply = Reply{Verb: VerbResult, Code: int32(v[0]), Opaque: int32(v[2]), Body: buf[i:total:total]}
	return &rd.reply, total, true
}

// decode is Decode's general path.
func (rd *ReplyDecoder) decode(buf []byte) (*Reply, int, error) {
	d := &rd.inner
	if d.err != nil {
		return nil, 0, d.err
	}
	rd.need = 0
	line, n, e := scanLine(buf, rd.cfg.MaxLineLength)
	if e != nil {
		return nil, 0, d.fail(e)
	}
	if n == 0 {
		return nil, 0, nil
	}
	d.tokenize(line)
	var f *form
	switch string(d.toks[0]) {
	case "result":
		f = &resultForm
	case "value":
		f = &valueForm
	default:
		return nil, 0, d.fail(&Error{Kind: KindUnknownVerb, Code: CodeInternal, NoReply: true,
			Msg: fmt.Sprintf("unknown reply %s", quoteToken(d.toks[0]))})
	}
	lenAt := len(f.names) - 2
	body, total, e := d.frameBody(f, len(f.names), len(f.names), buf, n, lenAt)
	if e != nil {
		return nil, 0, d.fail(e)
	}
	if total == 0 {
		rd.need = d.need
		return nil, 0, nil
	}
	r := &rd.reply
	*r = Reply{Verb: f.verb, Code: CodeOK, Body: body}
	if f.verb == VerbResult {
		if r.Code, e = d.int32At(f, 1); e != nil {
			return nil, 0, d.fail(e)
		}
	}
	if r.Opaque, e = d.int32At(f, len(f.names)-1); e != nil {
		return nil, 0, d.fail(e)
	}
	return r, total, nil
}
