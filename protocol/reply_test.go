package protocol

import (
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestReplyEncoding(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"result with body", AppendResultString(nil, 500, -3, "bad topic"), "result 500 9 -3\r\nbad topic"},
		{"result empty body", AppendResult(nil, 200, 1, nil), "result 200 0 1\r\n"},
		{"result header", AppendResultHeader(nil, 301, 4, 2), "result 301 4 2\r\n"},
		{"put result", AppendPutResult(nil, 5, -123, 2, 1024), "result 200 11 5\r\n-123 2 1024"},
		{"put result in tx", AppendPutResult(nil, 5, 1, 0, -1), "result 200 6 5\r\n1 0 -1"},
		{"value", AppendValue(nil, 9, []byte("abc")), "value 3 9\r\nabc"},
		{"value header", AppendValueHeader(nil, 100, math.MaxInt32), "value 100 2147483647\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Fatalf("got %q want %q", tt.got, tt.want)
			}
		})
	}
}

func TestDecodeValidReplies(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Reply
	}{
		{"result ok empty", "result 200 0 1\r\n", Reply{Verb: VerbResult, Code: 200, Opaque: 1, Body: []byte{}}},
		{"result error body", "result 500 3 -9\r\nbad", Reply{Verb: VerbResult, Code: 500, Opaque: -9, Body: []byte("bad")}},
		{"result moved", "result 301 4 2147483647\r\n1024", Reply{Verb: VerbResult, Code: 301, Opaque: math.MaxInt32, Body: []byte("1024")}},
		{"value", "value 5 3\r\nhello", Reply{Verb: VerbValue, Code: 200, Opaque: 3, Body: []byte("hello")}},
		{"value empty", "value 0 3\r\n", Reply{Verb: VerbValue, Code: 200, Opaque: 3, Body: []byte{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, n, err := NewReplyDecoder(Config{}).Decode([]byte(tt.in))
			if err != nil || n != len(tt.in) || !reflect.DeepEqual(*r, tt.want) {
				t.Fatalf("got %+v %d %v", r, n, err)
			}
			if wire := r.AppendTo(nil); string(wire) != tt.in {
				t.Fatalf("re-encoded %q", wire)
			}
		})
	}
}

func TestDecodeMalformedReplies(t *testing.T) {
	tests := []struct {
		name string
		in   string
		kind ErrorKind
	}{
		{"unknown reply", "ok 200 0 1\r\n", KindUnknownVerb},
		{"request verb", "put t 0 0 0 1\r\n", KindUnknownVerb},
		{"result three tokens", "result 200 0\r\n", KindTokenCount},
		{"result five tokens", "result 200 0 1 2\r\n", KindTokenCount},
		{"value four tokens", "value 0 1 2\r\n", KindTokenCount},
		{"value two tokens", "value 0\r\n", KindTokenCount},
		{"result bad code", "result ok 0 1\r\n", KindBadNumber},
		{"result bad len", "result 200 x 1\r\n", KindBadNumber},
		{"result negative len", "result 200 -1 1\r\n", KindBadValue},
		{"result bad opaque", "result 200 0 01\r\n", KindBadNumber},
		{"value negative len", "value -1 1\r\n", KindBadValue},
		{"value len overflow", "value 2147483648 1\r\n", KindNumberRange},
		{"value too large", "value 67108865 1\r\n", KindBodyTooLarge},
		{"bare LF", "result 200 0 1\n", KindBadLineEnding},
		{"double space", "result 200  0 1\r\n", KindBadSpacing},
		{"NUL", "result 200 0 1\x00\r\n", KindControlChar},
		{"long line", strings.Repeat("r", 2000), KindLineTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := NewReplyDecoder(Config{}).Decode([]byte(tt.in))
			var e *Error
			if e2, ok := err.(*Error); ok {
				e = e2
			}
			if e == nil || e.Kind != tt.kind || !e.Fatal {
				t.Fatalf("got %v (kind %v), want fatal %v", err, KindOf(err), tt.kind)
			}
		})
	}
}

func TestReplySplitInvariance(t *testing.T) {
	in := "result 200 0 1\r\nvalue 5 2\r\nhelloresult 500 3 3\r\nbadvalue 0 4\r\nresult 200 5 5\r\nhel"
	whole := driveReplies(Config{}, []byte(in))
	if len(whole) != 5 {
		t.Fatalf("%q", whole)
	}
	rng := rand.New(rand.NewSource(2))
	for k := 0; k <= len(in); k++ {
		if got := driveReplies(Config{}, []byte(in[:k]), []byte(in[k:])); !equalEvents(got, whole) {
			t.Fatalf("split %d: %q", k, got)
		}
	}
	for range 300 {
		if got := driveReplies(Config{}, randomChunks(rng, []byte(in))...); !equalEvents(got, whole) {
			t.Fatalf("%q", got)
		}
	}
}

func TestParsePutResult(t *testing.T) {
	id, p, off, err := ParsePutResult([]byte("-5 3 -1"))
	if err != nil || id != -5 || p != 3 || off != -1 {
		t.Fatal(id, p, off, err)
	}
	for _, bad := range []string{"", "1 2", "1 2 3 4", "1  2 3", "a 2 3", "1 2147483648 3"} {
		if _, _, _, err := ParsePutResult([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestParsePutResultFastPathAgrees checks the one-pass parser against the
// general one: it accepts only what the general path accepts, with the same
// values, and leaves everything else to it.
func TestParsePutResultFastPathAgrees(t *testing.T) {
	general := func(body string) (int64, int32, int64, bool) {
		f := strings.Fields(body)
		if len(f) != 3 || strings.Join(f, " ") != body {
			return 0, 0, 0, false
		}
		var v [3]int64
		for i, s := range f {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || strconv.FormatInt(n, 10) != s {
				return 0, 0, 0, false
			}
			v[i] = n
		}
		if v[1] < math.MinInt32 || v[1] > math.MaxInt32 {
			return 0, 0, 0, false
		}
		return v[0], int32(v[1]), v[2], true
	}
	cases := []string{"0 0 0", "7166921412931796992 3 123456789", "9223372036854775807 2147483647 9223372036854775807",
		"9223372036854775808 0 0", "99999999999999999999 0 0", "1 2147483648 3", "-5 3 -1", "-0 1 2", "01 2 3",
		"1 02 3", "1 2 03", "1 2 3 ", " 1 2 3", "1  2 3", "1 2", "1 2 3 4", "", "1 2 3\r", "+1 2 3", "1 -2147483648 0"}
	rng := rand.New(rand.NewSource(3))
	const alphabet = "0123456789 -0123456789"
	for range 20000 {
		b := make([]byte, rng.Intn(24))
		for i := range b {
			b[i] = alphabet[rng.Intn(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	// Long runs of digits: the fast path's eight-at-a-time steps, at every
	// alignment, up to and past the 19 digits an int64 holds.
	const digitHeavy = "01234567890123456789012345678 /:"
	for range 20000 {
		b := make([]byte, rng.Intn(64))
		for i := range b {
			b[i] = digitHeavy[rng.Intn(len(digitHeavy))]
		}
		cases = append(cases, string(b))
	}
	for _, n := range []int{1, 7, 8, 9, 15, 16, 17, 18, 19, 20, 24, 25} {
		f := strings.Repeat("9", n)
		cases = append(cases, f+" 0 0", "0 0 "+f, "1 "+f+" 2", f[:n-1]+"8 12345678 87654321")
	}
	for _, c := range cases {
		id, p, off, err := ParsePutResult([]byte(c))
		wid, wp, woff, ok := general(c)
		if (err == nil) != ok || id != wid || p != wp || off != woff {
			t.Fatalf("%q: got %d %d %d %v, want %d %d %d ok=%v", c, id, p, off, err, wid, wp, woff, ok)
		}
		if fid, fp, foff, fok := parsePutResultFast([]byte(c)); fok && (!ok || fid != wid || fp != wp || foff != woff) {
			t.Fatalf("%q: fast path %d %d %d, want %d %d %d ok=%v", c, fid, fp, foff, wid, wp, woff, ok)
		}
	}
}

// TestReplyDecodeFastPathAgrees checks Decode's one-pass result path against
// the general one on every prefix of valid and mutated frames: whatever the
// fast path accepts, the general path accepts with the same reply and
// length; everything else is left to the general path.
func TestReplyDecodeFastPathAgrees(t *testing.T) {
	frames := []string{"result 200 31 7\r\n7166921412931796992 3 123456789", "result 200 0 0\r\n", "result 503 4 2147483647\r\nbusy",
		"result 200 3 -5\r\nabc", "result 200 3 2147483648\r\nabc", "result 0200 3 1\r\nabc", "result 200 03 1\r\nabc",
		"result 200 3 01\r\nabc", "result  200 3 1\r\nabc", "result 200 3 1\n", "result 200 3 1 \r\nabc", "result 200 20 1\r\n01234567890123456789",
		"value 3 9\r\nabc", "result 200 99999999999 1\r\nx", "result 200 3 1\r\r\nabc", "resulT 200 3 1\r\nabc"}
	rng := rand.New(rand.NewSource(4))
	const alphabet = "0123456789 \r\n-x"
	for range 3000 {
		b := []byte(frames[rng.Intn(len(frames))])
		for range 1 + rng.Intn(2) {
			b[rng.Intn(len(b))] = alphabet[rng.Intn(len(alphabet))]
		}
		frames = append(frames, string(b))
	}
	describe := func(r *Reply, n int, err error) string {
		if r == nil {
			return fmt.Sprintf("nil n=%d err=%v", n, err != nil)
		}
		return fmt.Sprintf("%+v n=%d err=%v", *r, n, err != nil)
	}
	for _, cfg := range []Config{{}, {MaxBodySize: 10}} {
		for _, f := range frames {
			for k := 0; k <= len(f); k++ {
				in := []byte(f[:k])
				fr, fn, ok := NewReplyDecoder(cfg).decodeResultFast(in)
				gr, gn, gerr := NewReplyDecoder(cfg).decode(in)
				if ok && describe(fr, fn, nil) != describe(gr, gn, gerr) {
					t.Fatalf("%q: fast %s, general %s", in, describe(fr, fn, nil), describe(gr, gn, gerr))
				}
				dr, dn, derr := NewReplyDecoder(cfg).Decode(in)
				if describe(dr, dn, derr) != describe(gr, gn, gerr) {
					t.Fatalf("%q: Decode %s, general %s", in, describe(dr, dn, derr), describe(gr, gn, gerr))
				}
			}
		}
	}
}
