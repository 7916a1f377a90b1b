package protocol

// OffsetRequest is `offset <topic> <group> <partition> <offset> <opaque>`.
type OffsetRequest struct {
	Topic     string
	Group     string
	Partition int32
	Offset    int64
	OpaqueID  int32
}

// Verb implements Request.
func (r *OffsetRequest) Verb() Verb { return VerbOffset }

// Opaque implements Request.
func (r *OffsetRequest) Opaque() int32 { return r.OpaqueID }

// AppendTo appends the offset line.
func (r *OffsetRequest) AppendTo(dst []byte) []byte {
	dst = append(dst, "offset "...)
	dst = append(dst, r.Topic...)
	dst = appendStr(dst, r.Group)
	dst = appendInt(dst, int64(r.Partition))
	dst = appendInt(dst, r.Offset)
	dst = appendInt(dst, int64(r.OpaqueID))
	return appendCRLF(dst)
}

// AppendOffset appends an offset request.
func AppendOffset(dst []byte, r *OffsetRequest) []byte { return r.AppendTo(dst) }

var offsetForm = form{VerbOffset, []string{"verb", "topic", "group", "partition", "offset", "opaque"}}

func (d *Decoder) decodeOffset(n int) (Request, int, *Error) {
	f := &offsetForm
	if e := d.lineChecks(f); e != nil {
		return nil, n, e
	}
	r := &d.off
	*r = OffsetRequest{}
	var e *Error
	if r.Topic, r.Group, r.Partition, r.Offset, e = d.readTarget(f); e != nil {
		return nil, n, e
	}
	if r.OpaqueID, e = d.int32At(f, 5); e != nil {
		return nil, n, e
	}
	return r, n, nil
}
