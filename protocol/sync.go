package protocol

// SyncRequest is `sync <topic> <partition> <len> <flag> <msgId> [<checksum>] <opaque>\r\n<data>`,
// sent by a master broker to replicate one message to a slave.
type SyncRequest struct {
	Topic     string
	Partition int32
	Flag      int32
	MsgID     int64
	// Checksum of Data, -1 when not supplied (masters before MetaQ 1.4.4
	// send no checksum token; NoChecksum selects that form).
	Checksum   int32
	OpaqueID   int32
	Data       []byte // aliases the decoder's input after Decode
	NoChecksum bool
}

// Verb implements Request.
func (r *SyncRequest) Verb() Verb { return VerbSync }

// Opaque implements Request.
func (r *SyncRequest) Opaque() int32 { return r.OpaqueID }

// AppendTo appends the sync line and its data.
func (r *SyncRequest) AppendTo(dst []byte) []byte {
	dst = append(dst, "sync "...)
	dst = append(dst, r.Topic...)
	dst = appendInt(dst, int64(r.Partition))
	dst = appendInt(dst, int64(len(r.Data)))
	dst = appendInt(dst, int64(r.Flag))
	dst = appendInt(dst, r.MsgID)
	if !r.NoChecksum {
		dst = appendInt(dst, int64(r.Checksum))
	}
	dst = appendInt(dst, int64(r.OpaqueID))
	dst = appendCRLF(dst)
	return append(dst, r.Data...)
}

// AppendSync appends a sync request; see SyncRequest.AppendTo.
func AppendSync(dst []byte, r *SyncRequest) []byte { return r.AppendTo(dst) }

var (
	syncForm8 = form{VerbSync, []string{"verb", "topic", "partition", "len", "flag", "msgId", "checksum", "opaque"}}
	syncForm7 = form{VerbSync, []string{"verb", "topic", "partition", "len", "flag", "msgId", "opaque"}}
)

func (d *Decoder) decodeSync(buf []byte, n int) (Request, int, *Error) {
	data, total, e := d.frameBody(&syncForm8, 7, 8, buf, n, 3)
	if e != nil || total == 0 {
		return nil, total, e
	}
	r := &d.sync
	*r = SyncRequest{Data: data, Checksum: -1, NoChecksum: d.ntok == 7}
	f := &syncForm8
	if r.NoChecksum {
		f = &syncForm7
	}
	if e = d.syncFields(f, r); e != nil {
		return nil, total, e
	}
	return r, total, nil
}

func (d *Decoder) syncFields(f *form, r *SyncRequest) *Error {
	var e *Error
	if r.Topic, e = d.topicAt(f, 1); e != nil {
		return e
	}
	if r.Partition, e = d.int32At(f, 2); e != nil {
		return e
	}
	if r.Partition < 0 {
		return d.tokenErr(f, KindBadValue, 2, "is not a valid partition")
	}
	if r.Flag, e = d.int32At(f, 4); e != nil {
		return e
	}
	if r.MsgID, e = d.int64At(f, 5); e != nil {
		return e
	}
	if !r.NoChecksum {
		if r.Checksum, e = d.checksumAt(f, 6); e != nil {
			return e
		}
	}
	r.OpaqueID, e = d.int32At(f, d.ntok-1)
	return e
}
