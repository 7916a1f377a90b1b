package protocol

// GetRequest is `get <topic> <group> <partition> <offset> <maxSize> <opaque>`,
// or, ours, the long-poll form `get <topic> <group> <partition> <offset>
// <maxSize> <maxWaitMs> <opaque>` (see LongPollCapability): when the offset is
// at the end of the visible data the broker holds the request for up to
// maxWaitMs and answers as soon as data arrives (or 404 when the time is up).
type GetRequest struct {
	Topic     string
	Group     string
	Partition int32
	Offset    int64
	// MaxSize is passed through as sent: maxSize <= 0 is answered by the
	// broker with a 400 reply, it is not a decoding error.
	MaxSize int32
	// MaxWaitMs > 0 selects the long-poll form. Send it only to brokers whose
	// version reply carries LongPollCapability.
	MaxWaitMs int32
	OpaqueID  int32
}

// LongPollCapability is the token a broker's version reply carries when it
// understands the long-poll get (MaxWaitMs).
const LongPollCapability = "longpoll"

// Verb implements Request.
func (r *GetRequest) Verb() Verb { return VerbGet }

// Opaque implements Request.
func (r *GetRequest) Opaque() int32 { return r.OpaqueID }

// AppendTo appends the get line.
func (r *GetRequest) AppendTo(dst []byte) []byte {
	dst = append(dst, "get "...)
	dst = append(dst, r.Topic...)
	dst = appendStr(dst, r.Group)
	dst = appendInt(dst, int64(r.Partition))
	dst = appendInt(dst, r.Offset)
	dst = appendInt(dst, int64(r.MaxSize))
	if r.MaxWaitMs > 0 {
		dst = appendInt(dst, int64(r.MaxWaitMs))
	}
	dst = appendInt(dst, int64(r.OpaqueID))
	return appendCRLF(dst)
}

// AppendGet appends a get request.
func AppendGet(dst []byte, r *GetRequest) []byte { return r.AppendTo(dst) }

var (
	getForm     = form{VerbGet, []string{"verb", "topic", "group", "partition", "offset", "maxSize", "opaque"}}
	getWaitForm = form{VerbGet, []string{"verb", "topic", "group", "partition", "offset", "maxSize", "maxWaitMs", "opaque"}}
)

// lineChecks applies the spacing and exact token count checks of a bodiless
// line.
func (d *Decoder) lineChecks(f *form) *Error {
	if e := d.checkSpacing(f.verb, -1); e != nil {
		return e
	}
	if d.ntok != len(f.names) {
		return d.countErr(f.verb, itoa(len(f.names)))
	}
	return nil
}

func (d *Decoder) groupAt(f *form, i int) (string, *Error) {
	if !ValidGroup(d.toks[i]) {
		return "", d.tokenErr(f, KindBadValue, i, "is not a valid group name")
	}
	return d.intern.get(d.toks[i]), nil
}

func (d *Decoder) partitionAt(f *form, i int) (int32, *Error) {
	p, e := d.int32At(f, i)
	if e == nil && p < 0 {
		e = d.tokenErr(f, KindBadValue, i, "is not a valid partition")
	}
	return p, e
}

func (d *Decoder) decodeGet(n int) (Request, int, *Error) {
	f := &getForm
	if d.ntok == len(getWaitForm.names) {
		f = &getWaitForm
	}
	if e := d.lineChecks(f); e != nil {
		return nil, n, e
	}
	r := &d.get
	*r = GetRequest{}
	var e *Error
	if r.Topic, r.Group, r.Partition, r.Offset, e = d.readTarget(f); e != nil {
		return nil, n, e
	}
	if r.MaxSize, e = d.int32At(f, 5); e != nil {
		return nil, n, e
	}
	op := 6
	if f == &getWaitForm {
		if r.MaxWaitMs, e = d.int32At(f, 6); e != nil {
			return nil, n, e
		}
		if r.MaxWaitMs <= 0 {
			return nil, n, d.tokenErr(f, KindBadValue, 6, "must be positive")
		}
		op = 7
	}
	if r.OpaqueID, e = d.int32At(f, op); e != nil {
		return nil, n, e
	}
	return r, n, nil
}

// readTarget reads the `<topic> <group> <partition> <offset>` tokens 1..4
// that get and offset requests share.
func (d *Decoder) readTarget(f *form) (topic, group string, partition int32, offset int64, e *Error) {
	if topic, e = d.topicAt(f, 1); e != nil {
		return
	}
	if group, e = d.groupAt(f, 2); e != nil {
		return
	}
	if partition, e = d.partitionAt(f, 3); e != nil {
		return
	}
	offset, e = d.int64At(f, 4)
	return
}
