package protocol

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// TxType is the TYPE token of a transaction request.
type TxType uint8

// Transaction types.
const (
	TxBegin TxType = iota + 1
	TxPrepare
	TxCommitOnePhase
	TxCommitTwoPhase
	TxRollback
	TxRecover
	TxForget
	TxEnd
)

var txTypeNames = [...]string{"", "BEGIN", "PREPARE", "COMMIT_ONE_PHASE", "COMMIT_TWO_PHASE",
	"ROLLBACK", "RECOVER", "FORGET", "END"}

func (t TxType) String() string {
	if int(t) < len(txTypeNames) && t != 0 {
		return txTypeNames[t]
	}
	return "TxType(" + strconv.Itoa(int(t)) + ")"
}

// ParseTxType parses a TYPE token (exact, upper case).
func ParseTxType[T ~string | ~[]byte](s T) (TxType, bool) {
	for i := 1; i < len(txTypeNames); i++ {
		if string(s) == txTypeNames[i] {
			return TxType(i), true
		}
	}
	return 0, false
}

// TransactionRequest is
// `transaction <txKey> <sessionId> <TYPE> [<timeoutSecs>] [<uniqueQualifier>] <opaque>`.
//
// With six tokens the fifth is the timeout when it is all ASCII digits, else
// the unique qualifier (as MetaQ decides).
type TransactionRequest struct {
	TxKey     string
	SessionID string
	Type      TxType
	// Timeout in seconds, 0 when absent.
	Timeout int32
	// UniqueQualifier selects the XA transactions RECOVER lists; "" = absent.
	UniqueQualifier string
	OpaqueID        int32
}

// Verb implements Request.
func (r *TransactionRequest) Verb() Verb { return VerbTransaction }

// Opaque implements Request.
func (r *TransactionRequest) Opaque() int32 { return r.OpaqueID }

// AppendTo appends the transaction line. The timeout is written when > 0,
// the qualifier when non-empty; a purely numeric qualifier without a timeout
// is written with an explicit timeout 0 so that it is not read back as one.
func (r *TransactionRequest) AppendTo(dst []byte) []byte {
	dst = append(dst, "transaction "...)
	dst = append(dst, r.TxKey...)
	dst = appendStr(dst, r.SessionID)
	dst = appendStr(dst, r.Type.String())
	if r.Timeout > 0 || (r.UniqueQualifier != "" && allDigits(r.UniqueQualifier)) {
		dst = appendInt(dst, int64(r.Timeout))
	}
	if r.UniqueQualifier != "" {
		dst = appendStr(dst, r.UniqueQualifier)
	}
	dst = appendInt(dst, int64(r.OpaqueID))
	return appendCRLF(dst)
}

// AppendTransaction appends a transaction request.
func AppendTransaction(dst []byte, r *TransactionRequest) []byte { return r.AppendTo(dst) }

func allDigits[T ~string | ~[]byte](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

var (
	txForm5  = form{VerbTransaction, []string{"verb", "txKey", "sessionId", "type", "opaque"}}
	txForm6t = form{VerbTransaction, []string{"verb", "txKey", "sessionId", "type", "timeout", "opaque"}}
	txForm6q = form{VerbTransaction, []string{"verb", "txKey", "sessionId", "type", "uniqueQualifier", "opaque"}}
	txForm7  = form{VerbTransaction, []string{"verb", "txKey", "sessionId", "type", "timeout", "uniqueQualifier", "opaque"}}
)

func (d *Decoder) decodeTransaction(n int) (Request, int, *Error) {
	f := &txForm7
	if e := d.checkSpacing(f.verb, -1); e != nil {
		return nil, n, e
	}
	timeoutAt, qualAt := -1, -1
	switch d.ntok {
	case 5:
		f = &txForm5
	case 6:
		if allDigits(d.toks[4]) {
			f, timeoutAt = &txForm6t, 4
		} else {
			f, qualAt = &txForm6q, 4
		}
	case 7:
		timeoutAt, qualAt = 4, 5
	default:
		return nil, n, d.countErr(f.verb, "5 to 7")
	}
	r := &d.tx
	*r = TransactionRequest{}
	if e := d.txFields(f, r, timeoutAt, qualAt); e != nil {
		return nil, n, e
	}
	return r, n, nil
}

func (d *Decoder) txFields(f *form, r *TransactionRequest, timeoutAt, qualAt int) *Error {
	var e *Error
	if r.TxKey, e = d.txKeyAt(f, 1); e != nil {
		return e
	}
	r.SessionID = d.intern.get(d.toks[2])
	t, ok := ParseTxType(d.toks[3])
	if !ok {
		return d.tokenErr(f, KindBadValue, 3, "is not a transaction type (BEGIN, PREPARE, COMMIT_ONE_PHASE, COMMIT_TWO_PHASE, ROLLBACK, RECOVER, FORGET, END)")
	}
	r.Type = t
	if timeoutAt > 0 {
		if r.Timeout, e = d.int32At(f, timeoutAt); e != nil {
			return e
		}
		if r.Timeout < 0 {
			return d.tokenErr(f, KindBadValue, timeoutAt, "is a negative timeout")
		}
	}
	if qualAt > 0 {
		r.UniqueQualifier = d.intern.get(d.toks[qualAt])
	}
	r.OpaqueID, e = d.int32At(f, d.ntok-1)
	return e
}

func (d *Decoder) txKeyAt(f *form, i int) (string, *Error) {
	// Keys already seen were validated then; only new ones are parsed.
	if s, ok := d.txKeys.m[string(d.toks[i])]; ok {
		return s, nil
	}
	if _, err := ParseTxKey(d.toks[i]); err != nil {
		return "", d.tokenErr(f, KindBadValue, i, "is not a transaction key (TX:<sessionId>:<n>, XID:<formatId>:<gtrid>:<bqual>:<qualifier> or null)")
	}
	return d.txKeys.get(d.toks[i]), nil
}

// TxKeyKind tells the form of a transaction key.
type TxKeyKind uint8

// Transaction key kinds.
const (
	TxKeyNull  TxKeyKind = iota + 1 // "null": no transaction (MetaQ's NullTransactionId)
	TxKeyLocal                      // TX:<sessionId>:<n>
	TxKeyXA                         // XID:<formatId>:<hex gtrid>:<hex bqual>:<uniqueQualifier>
)

// TxKey is a parsed transaction key.
type TxKey struct {
	Kind TxKeyKind
	// Local keys.
	SessionID string
	Counter   int64
	// XA keys.
	FormatID        int32
	GlobalTxID      []byte // gtrid
	BranchQualifier []byte // bqual
	UniqueQualifier string
}

// LocalTxKey returns the key of local transaction n of a session.
func LocalTxKey(sessionID string, n int64) TxKey {
	return TxKey{Kind: TxKeyLocal, SessionID: sessionID, Counter: n}
}

// XATxKey returns the key of an XA branch.
func XATxKey(formatID int32, gtrid, bqual []byte, uniqueQualifier string) TxKey {
	return TxKey{Kind: TxKeyXA, FormatID: formatID, GlobalTxID: gtrid, BranchQualifier: bqual,
		UniqueQualifier: uniqueQualifier}
}

// String formats the key in its wire form (hex in lower case).
func (k TxKey) String() string { return string(k.AppendTo(nil)) }

// AppendTo appends the wire form of the key.
func (k TxKey) AppendTo(dst []byte) []byte {
	switch k.Kind {
	case TxKeyLocal:
		dst = append(dst, "TX:"...)
		dst = append(dst, k.SessionID...)
		dst = append(dst, ':')
		return appendDec(dst, k.Counter)
	case TxKeyXA:
		dst = append(dst, "XID:"...)
		dst = appendDec(dst, int64(k.FormatID))
		dst = append(dst, ':')
		dst = hex.AppendEncode(dst, k.GlobalTxID)
		dst = append(dst, ':')
		dst = hex.AppendEncode(dst, k.BranchQualifier)
		dst = append(dst, ':')
		return append(dst, k.UniqueQualifier...)
	default:
		return append(dst, "null"...)
	}
}

// ParseTxKey parses a transaction key: "null", "TX:<sessionId>:<n>" (the
// session id has no ':'), or "XID:<formatId>:<hex>:<hex>:<uniqueQualifier>"
// (hex of either case; the qualifier may be empty and has no ':').
func ParseTxKey[T ~string | ~[]byte](key T) (TxKey, error) {
	s := string(key)
	bad := func(why string) (TxKey, error) {
		return TxKey{}, fmt.Errorf("%w %q: %s", ErrBadTxKey, s, why)
	}
	if s == "null" {
		return TxKey{Kind: TxKeyNull}, nil
	}
	if strings.ContainsAny(s, " \r\n\x00") {
		return bad("contains a space or control character")
	}
	if rest, ok := strings.CutPrefix(s, "TX:"); ok {
		parts := strings.Split(rest, ":")
		if len(parts) != 2 || parts[0] == "" {
			return bad("want TX:<sessionId>:<n>")
		}
		n, st := parseDec([]byte(parts[1]), -1<<63, 1<<63-1)
		if st != numOK {
			return bad("counter is not a number")
		}
		return LocalTxKey(parts[0], n), nil
	}
	if rest, ok := strings.CutPrefix(s, "XID:"); ok {
		parts := strings.Split(rest, ":")
		if len(parts) != 4 {
			return bad("want XID:<formatId>:<gtrid>:<bqual>:<uniqueQualifier>")
		}
		fid, ok := parseInt32([]byte(parts[0]))
		if !ok {
			return bad("formatId is not an int32")
		}
		g, err1 := hex.DecodeString(parts[1])
		b, err2 := hex.DecodeString(parts[2])
		if err1 != nil || err2 != nil {
			return bad("gtrid and bqual must be hex")
		}
		return XATxKey(fid, g, b, parts[3]), nil
	}
	return bad("want TX:..., XID:... or null")
}
