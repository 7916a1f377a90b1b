package protocol

import (
	"errors"
	"fmt"
	"math/rand"
)

// drive feeds chunks to a fresh decoder the way a gnet handler would
// (accumulating, discarding what was consumed) and records every event.
func drive(cfg Config, chunks ...[]byte) []string {
	d := NewDecoder(cfg)
	var buf []byte
	var ev []string
	for _, c := range chunks {
		buf = append(buf, c...)
		for {
			req, n, err := d.Decode(buf)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					return append(ev, "non-*Error: "+err.Error())
				}
				ev = append(ev, fmt.Sprintf("err kind=%v code=%d fatal=%v noreply=%v n=%d op=%d %s",
					e.Kind, e.Code, e.Fatal, e.NoReply, n, e.Opaque, e.Msg))
				if e.Fatal {
					return ev
				}
				if n <= 0 {
					return append(ev, "non-fatal error consumed nothing")
				}
				buf = buf[n:]
				continue
			}
			if n == 0 {
				if req != nil {
					ev = append(ev, "request with n == 0")
				}
				break
			}
			if req == nil { // a refused body being skipped: how it is cut depends on the chunks
				buf = buf[n:]
				continue
			}
			ev = append(ev, fmt.Sprintf("n=%d %T%+v", n, req, req))
			buf = buf[n:]
		}
	}
	if len(buf) > 0 {
		ev = append(ev, fmt.Sprintf("leftover %d", len(buf)))
	}
	return ev
}

func driveReplies(cfg Config, chunks ...[]byte) []string {
	d := NewReplyDecoder(cfg)
	var buf []byte
	var ev []string
	for _, c := range chunks {
		buf = append(buf, c...)
		for {
			r, n, err := d.Decode(buf)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || !e.Fatal {
					return append(ev, "reply error not fatal *Error: "+err.Error())
				}
				return append(ev, fmt.Sprintf("err kind=%v %s", e.Kind, e.Msg))
			}
			if n == 0 {
				break
			}
			ev = append(ev, fmt.Sprintf("n=%d %+v", n, *r))
			buf = buf[n:]
		}
	}
	if len(buf) > 0 {
		ev = append(ev, fmt.Sprintf("leftover %d", len(buf)))
	}
	return ev
}

// randomChunks splits in into random pieces (some empty).
func randomChunks(rng *rand.Rand, in []byte) [][]byte {
	var out [][]byte
	for len(in) > 0 {
		k := rng.Intn(len(in) + 1)
		if rng.Intn(4) == 0 {
			k = rng.Intn(min(len(in), 3) + 1)
		}
		out = append(out, in[:k])
		in = in[k:]
	}
	return out
}

func equalEvents(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
