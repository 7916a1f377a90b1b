package protocol

// ReplicateRequest is `replicate <brokerId> <memberId> <sync|async> <epoch> <opaque>`
// (ours, docs/REPLICATION.md): a follower opens a replication stream on the
// master's client port. The master answers `result 200 <len> <opaque>` or
// refuses (403 wrong brokerId or not a master, 409 stale epoch). After it, the
// follower pipelines long-poll gets at its durable ends; each get's offset
// acknowledges everything before it.
type ReplicateRequest struct {
	BrokerID int32
	MemberID int32 // 0 = the configured master, N >= 1 = slaveId N
	Sync     bool  // sync (true) or async follower
	Epoch    int64 // the follower's newest known epoch
	OpaqueID int32
}

// Replication modes on the wire.
const (
	ReplicateSync  = "sync"
	ReplicateAsync = "async"
)

// Verb implements Request.
func (r *ReplicateRequest) Verb() Verb { return VerbReplicate }

// Opaque implements Request.
func (r *ReplicateRequest) Opaque() int32 { return r.OpaqueID }

// AppendTo appends the replicate line.
func (r *ReplicateRequest) AppendTo(dst []byte) []byte {
	dst = append(dst, "replicate"...)
	dst = appendInt(dst, int64(r.BrokerID))
	dst = appendInt(dst, int64(r.MemberID))
	mode := ReplicateAsync
	if r.Sync {
		mode = ReplicateSync
	}
	dst = appendStr(dst, mode)
	dst = appendInt(dst, r.Epoch)
	dst = appendInt(dst, int64(r.OpaqueID))
	return appendCRLF(dst)
}

var replicateForm = form{VerbReplicate, []string{"verb", "brokerId", "memberId", "mode", "epoch", "opaque"}}

func (d *Decoder) decodeReplicate(n int) (Request, int, *Error) {
	f := &replicateForm
	if e := d.lineChecks(f); e != nil {
		return nil, n, e
	}
	r := &d.repl
	*r = ReplicateRequest{}
	var e *Error
	if r.BrokerID, e = d.int32At(f, 1); e != nil {
		return nil, n, e
	}
	if r.MemberID, e = d.int32At(f, 2); e != nil {
		return nil, n, e
	}
	if r.BrokerID < 0 || r.BrokerID > 1023 {
		return nil, n, d.tokenErr(f, KindBadValue, 1, "is not a brokerId 0..1023")
	}
	if r.MemberID < 0 || r.MemberID > 1023 {
		return nil, n, d.tokenErr(f, KindBadValue, 2, "is not a member id 0..1023")
	}
	switch string(d.toks[3]) {
	case ReplicateSync:
		r.Sync = true
	case ReplicateAsync:
	default:
		return nil, n, d.tokenErr(f, KindBadValue, 3, "is not sync or async")
	}
	if r.Epoch, e = d.int64At(f, 4); e != nil {
		return nil, n, e
	}
	if r.Epoch < 0 {
		return nil, n, d.tokenErr(f, KindBadValue, 4, "is not an epoch >= 0")
	}
	if r.OpaqueID, e = d.int32At(f, 5); e != nil {
		return nil, n, e
	}
	return r, n, nil
}
