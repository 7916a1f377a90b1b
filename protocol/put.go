package protocol

import "math"

// PutRequest is `put <topic> <partition> <len> <flag> [<checksum>] [<txKey>] <opaque>\r\n<data>`.
type PutRequest struct {
	Topic string
	// Partition; -1 lets the broker choose (not allowed in a transaction).
	Partition int32
	Flag      int32
	// Checksum is Checksum(Data), or -1 when not supplied.
	Checksum int32
	// TxKey is the transaction key, "" outside a transaction.
	TxKey    string
	OpaqueID int32
	// Data is the put data. After Decode it aliases the decoder's input.
	Data []byte
	// NoChecksum selects the legacy form without a checksum token (Python,
	// Ruby, .NET clients). Decoding such a line sets it and Checksum = -1.
	NoChecksum bool
}

// Verb implements Request.
func (r *PutRequest) Verb() Verb { return VerbPut }

// Opaque implements Request.
func (r *PutRequest) Opaque() int32 { return r.OpaqueID }

// AppendTo appends the put line and its data. With NoChecksum the checksum
// token is omitted.
func (r *PutRequest) AppendTo(dst []byte) []byte {
	dst = append(dst, "put "...)
	dst = append(dst, r.Topic...)
	dst = appendInt(dst, int64(r.Partition))
	dst = appendInt(dst, int64(len(r.Data)))
	dst = appendInt(dst, int64(r.Flag))
	if !r.NoChecksum {
		dst = appendInt(dst, int64(r.Checksum))
	}
	if r.TxKey != "" {
		dst = appendStr(dst, r.TxKey)
	}
	dst = appendInt(dst, int64(r.OpaqueID))
	dst = appendCRLF(dst)
	return append(dst, r.Data...)
}

// AppendPut appends a put request; see PutRequest.AppendTo.
func AppendPut(dst []byte, r *PutRequest) []byte { return r.AppendTo(dst) }

var (
	putForm8  = form{VerbPut, []string{"verb", "topic", "partition", "len", "flag", "checksum", "txKey", "opaque"}}
	putForm7c = form{VerbPut, []string{"verb", "topic", "partition", "len", "flag", "checksum", "opaque"}}
	putForm7t = form{VerbPut, []string{"verb", "topic", "partition", "len", "flag", "txKey", "opaque"}}
	putForm6  = form{VerbPut, []string{"verb", "topic", "partition", "len", "flag", "opaque"}}
)

// frameBody checks the spacing, token count and length token (index lenAt)
// of a line with a body. Any failure is fatal since framing is lost, except
// a body over MaxBodySize but within MaxDiscardSize: that error is returned
// with total == n (the line), and the decoder skips the body. Otherwise it
// returns the body and the frame size, or total == 0 when more bytes are
// needed.
func (d *Decoder) frameBody(f *form, minTok, maxTok int, buf []byte, n, lenAt int) ([]byte, int, *Error) {
	if e := d.checkSpacing(f.verb, -1); e != nil {
		e.Fatal = true
		return nil, 0, e
	}
	if d.ntok < minTok || d.ntok > maxTok {
		want := "between " + string(rune('0'+minTok)) + " and " + string(rune('0'+maxTok))
		if minTok == maxTok {
			want = string(rune('0' + minTok))
		}
		e := d.countErr(f.verb, want)
		e.Fatal = true
		return nil, 0, e
	}
	v, e := d.int32At(f, lenAt)
	if e != nil {
		e.Fatal = true
		return nil, 0, e
	}
	if v < 0 {
		e := d.tokenErr(f, KindBadValue, lenAt, "is a negative length")
		e.Fatal = true
		return nil, 0, e
	}
	if int64(v) > int64(d.cfg.MaxBodySize) {
		e := d.tokenErr(f, KindBodyTooLarge, lenAt, "exceeds the maximum message size "+itoa(d.cfg.MaxBodySize))
		if int64(v) > int64(d.cfg.MaxDiscardSize) {
			e.Msg += "; the connection is closed (bodies over " + itoa(max(d.cfg.MaxDiscardSize, d.cfg.MaxBodySize)) + " bytes are not read)"
			e.Fatal = true
			return nil, 0, e
		}
		d.skip = int(v)
		return nil, n, e
	}
	total := n + int(v)
	if len(buf) < total {
		d.need = total
		return nil, 0, nil
	}
	return buf[n:total:total], total, nil
}

func itoa(v int) string { return string(appendDec(nil, int64(v))) }

func (d *Decoder) decodePut(buf []byte, n int) (Request, int, *Error) {
	data, total, e := d.frameBody(&putForm8, 6, 8, buf, n, 3)
	if e != nil || total == 0 {
		return nil, total, e
	}
	r := &d.put
	*r = PutRequest{Data: data, Checksum: -1}
	f := &putForm8
	txAt := -1
	switch d.ntok {
	case 6:
		f, r.NoChecksum = &putForm6, true
	case 7:
		if c := d.toks[5][0]; c >= '0' && c <= '9' || c == '-' {
			f = &putForm7c
		} else {
			f, r.NoChecksum, txAt = &putForm7t, true, 5
		}
	case 8:
		txAt = 6
	}
	if e = d.putFields(f, r, txAt); e != nil {
		return nil, total, e
	}
	return r, total, nil
}

func (d *Decoder) putFields(f *form, r *PutRequest, txAt int) *Error {
	var e *Error
	if r.Topic, e = d.topicAt(f, 1); e != nil {
		return e
	}
	if r.Partition, e = d.int32At(f, 2); e != nil {
		return e
	}
	if r.Partition < -1 {
		return d.tokenErr(f, KindBadValue, 2, "is not a valid partition")
	}
	if r.Flag, e = d.int32At(f, 4); e != nil {
		return e
	}
	if !r.NoChecksum {
		if r.Checksum, e = d.checksumAt(f, 5); e != nil {
			return e
		}
	}
	if txAt > 0 {
		if r.TxKey, e = d.txKeyAt(f, txAt); e != nil {
			return e
		}
		if r.Partition < 0 {
			return d.tokenErr(f, KindBadValue, 2, "is not a valid partition inside a transaction")
		}
	}
	r.OpaqueID, e = d.int32At(f, d.ntok-1)
	return e
}

func (d *Decoder) checksumAt(f *form, i int) (int32, *Error) {
	v, e := d.intAt(f, i, math.MinInt32, math.MaxInt32, "int32")
	if e == nil && v < -1 {
		e = d.tokenErr(f, KindBadValue, i, "is not a valid checksum (0..2147483647, or -1)")
	}
	return int32(v), e
}
