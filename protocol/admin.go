package protocol

import (
	"bytes"
	"fmt"
)

// VersionRequest is `version [<opaque>]`; idle clients send it as a
// heartbeat. Without an opaque, OpaqueID is NoOpaque.
type VersionRequest struct {
	OpaqueID int32
}

// Verb implements Request.
func (r *VersionRequest) Verb() Verb { return VerbVersion }

// Opaque implements Request.
func (r *VersionRequest) Opaque() int32 { return r.OpaqueID }

// AppendTo appends `version <opaque>`.
func (r *VersionRequest) AppendTo(dst []byte) []byte {
	dst = append(dst, "version"...)
	dst = appendInt(dst, int64(r.OpaqueID))
	return appendCRLF(dst)
}

// AppendVersion appends a version request.
func AppendVersion(dst []byte, opaque int32) []byte {
	r := VersionRequest{OpaqueID: opaque}
	return r.AppendTo(dst)
}

// StatsRequest is `stats <item> <opaque>`; the item may be empty (two
// spaces) and the opaque may be absent (then NoOpaque): `stats`,
// `stats <item>`, `stats <item> <opaque>`, `stats  <opaque>`.
type StatsRequest struct {
	Item     string
	OpaqueID int32
}

// Verb implements Request.
func (r *StatsRequest) Verb() Verb { return VerbStats }

// Opaque implements Request.
func (r *StatsRequest) Opaque() int32 { return r.OpaqueID }

// AppendTo appends `stats <item> <opaque>` (two spaces for an empty item),
// as the Java client does.
func (r *StatsRequest) AppendTo(dst []byte) []byte {
	dst = append(dst, "stats "...)
	dst = append(dst, r.Item...)
	dst = appendInt(dst, int64(r.OpaqueID))
	return appendCRLF(dst)
}

// AppendStatsRequest appends a stats request.
func AppendStatsRequest(dst []byte, item string, opaque int32) []byte {
	r := StatsRequest{Item: item, OpaqueID: opaque}
	return r.AppendTo(dst)
}

// QuitRequest is `quit`: the broker closes the connection without reply.
type QuitRequest struct{}

// Verb implements Request.
func (r *QuitRequest) Verb() Verb { return VerbQuit }

// Opaque implements Request; quit carries none.
func (r *QuitRequest) Opaque() int32 { return NoOpaque }

// AppendTo appends `quit`.
func (r *QuitRequest) AppendTo(dst []byte) []byte { return append(dst, "quit\r\n"...) }

// AppendQuit appends a quit request.
func AppendQuit(dst []byte) []byte { return append(dst, "quit\r\n"...) }

var (
	versionForm = form{VerbVersion, []string{"verb", "opaque"}}
	statsForm   = form{VerbStats, []string{"verb", "item", "opaque"}}
	quitForm    = form{VerbQuit, []string{"verb"}}
)

func (d *Decoder) decodeVersion(n int) (Request, int, *Error) {
	f := &versionForm
	if e := d.checkSpacing(f.verb, -1); e != nil {
		return nil, n, e
	}
	r := &d.ver
	*r = VersionRequest{OpaqueID: NoOpaque}
	switch d.ntok {
	case 1:
	case 2:
		var e *Error
		if r.OpaqueID, e = d.int32At(f, 1); e != nil {
			return nil, n, e
		}
	default:
		return nil, n, d.countErr(f.verb, "1 or 2")
	}
	return r, n, nil
}

func (d *Decoder) decodeStats(n int) (Request, int, *Error) {
	f := &statsForm
	skip := -1
	if d.ntok == 3 {
		skip = 1 // empty item
	}
	if e := d.checkSpacing(f.verb, skip); e != nil {
		return nil, n, e
	}
	r := &d.st
	*r = StatsRequest{OpaqueID: NoOpaque}
	switch d.ntok {
	case 1:
	case 2, 3:
		if len(d.toks[1]) > 0 {
			r.Item = d.intern.get(d.toks[1])
		}
		if d.ntok == 3 {
			var e *Error
			if r.OpaqueID, e = d.int32At(f, 2); e != nil {
				return nil, n, e
			}
		}
	default:
		return nil, n, d.countErr(f.verb, "1 to 3")
	}
	return r, n, nil
}

func (d *Decoder) decodeQuit(n int) (Request, int, *Error) {
	if e := d.lineChecks(&quitForm); e != nil {
		return nil, n, e
	}
	return &d.quit, n, nil
}

// Stats bodies: "STATS\r\n" + "key value\r\n"... + "END\r\n".
const (
	statsHeader  = "STATS\r\n"
	statsTrailer = "END\r\n"
)

// StatsLine is one `key value` line of a stats body. Value is everything
// after the first space (it may contain spaces, e.g. per-topic lines).
type StatsLine struct {
	Key   string
	Value string
}

// AppendStatsBody appends a complete stats body.
func AppendStatsBody(dst []byte, lines []StatsLine) []byte {
	dst = append(dst, statsHeader...)
	for _, l := range lines {
		dst = AppendStatsLine(dst, l.Key, l.Value)
	}
	return append(dst, statsTrailer...)
}

// AppendStatsLine appends one `key value\r\n` line (for building a body
// incrementally between "STATS\r\n" and "END\r\n"); an empty value
// writes the key alone, as MetaQ's `stats <topic>` does for its first line.
func AppendStatsLine(dst []byte, key, value string) []byte {
	dst = append(dst, key...)
	if value != "" {
		dst = append(dst, ' ')
		dst = append(dst, value...)
	}
	return appendCRLF(dst)
}

// ParseStatsBody parses a stats body. Lines are CRLF-terminated; a line
// without a space yields an empty Value.
func ParseStatsBody(body []byte) ([]StatsLine, error) {
	rest, ok := bytes.CutPrefix(body, []byte(statsHeader))
	if !ok {
		return nil, fmt.Errorf("%w: missing STATS header", ErrBadStats)
	}
	var out []StatsLine
	for {
		line, tail, found := bytes.Cut(rest, []byte("\r\n"))
		if !found {
			return nil, fmt.Errorf("%w: missing END trailer", ErrBadStats)
		}
		if string(line) == "END" {
			if len(tail) != 0 {
				return nil, fmt.Errorf("%w: %d bytes after END", ErrBadStats, len(tail))
			}
			return out, nil
		}
		k, v, _ := bytes.Cut(line, []byte(" "))
		out = append(out, StatsLine{Key: string(k), Value: string(v)})
		rest = tail
	}
}
