package protocol

import (
	"encoding/base64"
)

// Authentication (ours, PROTOCOL.md "Authentication"): a SASL exchange in
// `auth` requests. Each request carries the mechanism and one client
// message, base64-encoded:
//
//	auth <mechanism> <base64 client message> <opaque>\r\n
//
// The broker answers `result 200 <len> <opaque>` with the base64 final
// server message (empty for PLAIN) when the exchange succeeded,
// `result 100 <len> <opaque>` with the base64 server challenge when the
// mechanism needs another client message (SCRAM-SHA-256's client-final),
// and `result 401 <len> <opaque>` with a text reason when it failed.
const (
	// MechPlain is SASL PLAIN (RFC 4616): the message is "\x00user\x00password".
	MechPlain = "PLAIN"
	// MechSCRAMSHA256 is SASL SCRAM-SHA-256 (RFC 5802, RFC 7677).
	MechSCRAMSHA256 = "SCRAM-SHA-256"
)

// AuthRequest is `auth <mechanism> <base64 data> <opaque>`.
type AuthRequest struct {
	Mechanism string
	// Data is the client message, base64-decoded.
	Data     []byte
	OpaqueID int32
}

// Verb implements Request.
func (r *AuthRequest) Verb() Verb { return VerbAuth }

// Opaque implements Request.
func (r *AuthRequest) Opaque() int32 { return r.OpaqueID }

// AppendTo appends `auth <mechanism> <base64 data> <opaque>`. An empty
// message is sent as "=" (base64 has no empty token).
func (r *AuthRequest) AppendTo(dst []byte) []byte {
	dst = append(dst, "auth "...)
	dst = append(dst, r.Mechanism...)
	dst = append(dst, ' ')
	if len(r.Data) == 0 {
		dst = append(dst, '=')
	} else {
		dst = base64.StdEncoding.AppendEncode(dst, r.Data)
	}
	dst = appendInt(dst, int64(r.OpaqueID))
	return appendCRLF(dst)
}

// AppendAuth appends an auth request.
func AppendAuth(dst []byte, mechanism string, data []byte, opaque int32) []byte {
	r := AuthRequest{Mechanism: mechanism, Data: data, OpaqueID: opaque}
	return r.AppendTo(dst)
}

var authForm = form{VerbAuth, []string{"verb", "mechanism", "data", "opaque"}}

func (d *Decoder) decodeAuth(n int) (Request, int, *Error) {
	f := &authForm
	if e := d.lineChecks(f); e != nil {
		return nil, n, e
	}
	op, e := d.int32At(f, 3)
	if e != nil {
		return nil, n, e
	}
	mech := d.toks[1]
	for _, c := range mech {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') || len(mech) > 20 {
			return nil, n, d.tokenErr(f, KindBadValue, 1, "is not a SASL mechanism name (use PLAIN or SCRAM-SHA-256)")
		}
	}
	var data []byte
	if tok := d.toks[2]; len(tok) != 1 || tok[0] != '=' {
		var err error
		if data, err = base64.StdEncoding.AppendDecode(nil, tok); err != nil {
			return nil, n, d.tokenErr(f, KindBadValue, 2, "is not standard base64 (an empty message is '=')")
		}
	}
	return &AuthRequest{Mechanism: d.intern.get(mech), Data: data, OpaqueID: op}, n, nil
}
