package protocol

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

type badCase struct {
	name  string
	in    string
	kind  ErrorKind
	fatal bool
}

var badInt32 = []struct {
	tok  string
	kind ErrorKind
}{
	{"abc", KindBadNumber}, {"+1", KindBadNumber}, {"01", KindBadNumber}, {"00", KindBadNumber},
	{"-0", KindBadNumber}, {"1.5", KindBadNumber}, {"0x10", KindBadNumber}, {"1e3", KindBadNumber},
	{"-", KindBadNumber}, {"--1", KindBadNumber}, {"1-", KindBadNumber}, {"１", KindBadNumber},
	{"2147483648", KindNumberRange}, {"-2147483649", KindNumberRange},
	{"99999999999999999999999", KindNumberRange},
}

var badInt64 = []struct {
	tok  string
	kind ErrorKind
}{
	{"abc", KindBadNumber}, {"+1", KindBadNumber}, {"007", KindBadNumber}, {"-0", KindBadNumber},
	{"1.0", KindBadNumber}, {"1_000", KindBadNumber}, {"-", KindBadNumber}, {"9a", KindBadNumber},
	{"9223372036854775808", KindNumberRange}, {"-9223372036854775809", KindNumberRange},
	{"18446744073709551616", KindNumberRange}, {"123456789012345678901234567890", KindNumberRange},
}

// generatedBadCases substitutes bad numbers into every numeric token of a
// valid line of each form.
func generatedBadCases() []badCase {
	type base struct {
		name  string
		toks  []string
		body  string
		int32 []int
		int64 []int
		lenAt int // index whose failure is fatal, or -1
	}
	bases := []base{
		{"put", strings.Fields("put t 0 5 0 -1 1"), "hello", []int{2, 3, 4, 6}, nil, 3},
		{"put in tx", strings.Fields("put t 1 5 0 -1 TX:s:1 1"), "hello", []int{2, 3, 4, 5, 7}, nil, 3},
		{"legacy put", strings.Fields("put t 0 5 0 1"), "hello", []int{2, 3, 4, 5}, nil, 3},
		{"get", strings.Fields("get t g 0 0 1024 1"), "", []int{3, 5, 6}, []int{4}, -1},
		{"offset", strings.Fields("offset t g 0 0 1"), "", []int{3, 5}, []int{4}, -1},
		{"version", strings.Fields("version 1"), "", []int{1}, nil, -1},
		{"stats", strings.Fields("stats x 1"), "", []int{2}, nil, -1},
		{"transaction", strings.Fields("transaction TX:s:1 s BEGIN 10 q 1"), "", []int{4, 6}, nil, -1},
		{"sync", strings.Fields("sync t 0 5 0 9 -1 1"), "hello", []int{2, 3, 4, 6, 7}, []int{5}, 3},
	}
	var out []badCase
	add := func(b base, i int, tok string, kind ErrorKind) {
		toks := append([]string(nil), b.toks...)
		toks[i] = tok
		out = append(out, badCase{
			name:  fmt.Sprintf("%s token %d %q", b.name, i+1, tok),
			in:    strings.Join(toks, " ") + "\r\n" + b.body,
			kind:  kind,
			fatal: i == b.lenAt,
		})
	}
	for _, b := range bases {
		for _, i := range b.int32 {
			for _, bad := range badInt32 {
				add(b, i, bad.tok, bad.kind)
			}
		}
		for _, i := range b.int64 {
			for _, bad := range badInt64 {
				add(b, i, bad.tok, bad.kind)
			}
		}
	}
	return out
}

var handBadCases = []badCase{
	// Unknown verbs: close without reply.
	{"unknown verb", "foo 1\r\n", KindUnknownVerb, true},
	{"upper case verb", "PUT t 0 0 0 -1 1\r\n", KindUnknownVerb, true},
	{"empty line", "\r\n", KindUnknownVerb, true},
	{"leading space", " version 1\r\n", KindUnknownVerb, true},
	{"reply verb sent to broker", "result 200 0 1\r\n", KindUnknownVerb, true},
	{"value verb sent to broker", "value 0 1\r\n", KindUnknownVerb, true},
	{"verb prefix only", "ver 1\r\n", KindUnknownVerb, true},
	{"verb with suffix", "versions 1\r\n", KindUnknownVerb, true},
	{"telnet garbage", "GET / HTTP/1.1\r\n", KindUnknownVerb, true},
	// Line framing.
	{"bare LF", "version 1\n", KindBadLineEnding, true},
	{"bare LF only", "\n", KindBadLineEnding, true},
	{"bare LF put", "put t 0 0 0 -1 1\n", KindBadLineEnding, true},
	{"CR CR LF", "version 1\r\r\n", KindControlChar, true},
	{"NUL in line", "version\x001\r\n", KindControlChar, true},
	{"NUL in topic", "get t\x00 g 0 0 1 1\r\n", KindControlChar, true},
	{"tab separator", "version\t1\r\n", KindControlChar, true},
	{"CR inside line", "vers\rion 1\r\n", KindControlChar, true},
	{"DEL char", "get t\x7f g 0 0 1 1\r\n", KindControlChar, true},
	{"escape char", "stats \x1b[2J 1\r\n", KindControlChar, true},
	{"oversized line without LF", strings.Repeat("a", 1024), KindLineTooLong, true},
	{"oversized line with late LF", "get " + strings.Repeat("t", 2000) + " g 0 0 1 1\r\n", KindLineTooLong, true},
	{"oversized put line", "put " + strings.Repeat("t", 1100), KindLineTooLong, true},
	// Bodies.
	// A body over the limit costs only its request (the body is skipped)...
	{"oversized put body", "put t 0 4194305 0 -1 1\r\n", KindBodyTooLarge, false},
	{"oversized sync body", "sync t 0 4194305 0 1 -1 1\r\n", KindBodyTooLarge, false},
	{"oversized legacy put body", "put t 0 5000000 0 1\r\n", KindBodyTooLarge, false},
	{"oversized put body at the discard bound", "put t 0 67108864 0 -1 1\r\n", KindBodyTooLarge, false},
	// ...unless it is over the discard bound.
	{"oversized put body over the discard bound", "put t 0 67108865 0 -1 1\r\n", KindBodyTooLarge, true},
	{"oversized put body max int", "put t 0 2147483647 0 -1 1\r\n", KindBodyTooLarge, true},
	{"negative put length", "put t 0 -1 0 -1 1\r\n", KindBadValue, true},
	{"negative sync length", "sync t 0 -5 0 1 -1 1\r\n", KindBadValue, true},
	// Spacing.
	{"put double space", "put t  0 5 0 -1 1\r\nhello", KindBadSpacing, true},
	{"put trailing space", "put t 0 5 0 -1 1 \r\nhello", KindBadSpacing, true},
	{"sync double space", "sync t 0 5 0  9 -1 1\r\nhello", KindBadSpacing, true},
	{"get double space", "get t g  0 0 1 1\r\n", KindBadSpacing, false},
	{"get trailing space", "get t g 0 0 1 1 \r\n", KindBadSpacing, false},
	{"offset double space", "offset t  g 0 0 1\r\n", KindBadSpacing, false},
	{"version double space", "version  1\r\n", KindBadSpacing, false},
	{"version trailing space", "version \r\n", KindBadSpacing, false},
	{"stats trailing space", "stats \r\n", KindBadSpacing, false},
	{"stats double space after item", "stats x  1\r\n", KindBadSpacing, false},
	{"stats three spaces", "stats   1\r\n", KindBadSpacing, false},
	{"quit trailing space", "quit \r\n", KindBadSpacing, false},
	{"transaction double space", "transaction TX:s:1  s BEGIN 1\r\n", KindBadSpacing, false},
	{"verb followed by space only", "get \r\n", KindBadSpacing, false},
	// Token counts.
	{"put verb only", "put\r\n", KindTokenCount, true},
	{"put without length", "put t 0\r\n", KindTokenCount, true},
	{"put five tokens", "put t 0 5 0\r\nhello", KindTokenCount, true},
	{"put nine tokens", "put t 0 5 0 -1 TX:a:1 1 2\r\nhello", KindTokenCount, true},
	{"put many tokens", "put t 0 5 0 1 2 3 4 5 6 7 8 9\r\nhello", KindTokenCount, true},
	{"sync six tokens", "sync t 0 5 0 9\r\nhello", KindTokenCount, true},
	{"sync nine tokens", "sync t 0 5 0 9 -1 1 2\r\nhello", KindTokenCount, true},
	{"get five tokens", "get t g 0 0 1\r\n", KindTokenCount, false},
	{"get nine tokens", "get t g 0 0 1 1 1 1\r\n", KindTokenCount, false},
	{"long-poll get with zero wait", "get t g 0 0 1 0 1\r\n", KindBadValue, false},
	{"long-poll get with negative wait", "get t g 0 0 1 -5 1\r\n", KindBadValue, false},
	{"long-poll get with non-numeric wait", "get t g 0 0 1 soon 1\r\n", KindBadNumber, false},
	{"get verb only", "get\r\n", KindTokenCount, false},
	{"get many tokens", "get a b c d e f g h i j k\r\n", KindTokenCount, false},
	{"offset four tokens", "offset t g 0 1\r\n", KindTokenCount, false},
	{"offset seven tokens", "offset t g 0 0 1 1\r\n", KindTokenCount, false},
	{"version extra", "version 1 2\r\n", KindTokenCount, false},
	{"stats four tokens", "stats a 1 2\r\n", KindTokenCount, false},
	{"quit extra", "quit now\r\n", KindTokenCount, false},
	{"transaction four tokens", "transaction TX:s:1 s BEGIN\r\n", KindTokenCount, false},
	{"transaction eight tokens", "transaction TX:s:1 s BEGIN 1 q x 1\r\n", KindTokenCount, false},
	{"transaction verb only", "transaction\r\n", KindTokenCount, false},
	// Values.
	{"put bad topic slash", "put a/b 0 5 0 -1 1\r\nhello", KindBadValue, false},
	{"put bad topic dotdot", "put ../x 0 5 0 -1 1\r\nhello", KindBadValue, false},
	{"put topic too long", "put " + strings.Repeat("t", 256) + " 0 5 0 -1 1\r\nhello", KindBadValue, false},
	{"put topic non ascii", "put tøpic 0 5 0 -1 1\r\nhello", KindBadValue, false},
	{"put partition -2", "put t -2 5 0 -1 1\r\nhello", KindBadValue, false},
	{"put checksum -2", "put t 0 5 0 -2 1\r\nhello", KindBadValue, false},
	{"put checksum min int", "put t 0 5 0 -2147483648 TX:a:1 1\r\nhello", KindBadValue, false},
	{"put tx partition -1", "put t -1 5 0 -1 TX:a:1 1\r\nhello", KindBadValue, false},
	{"put slot neither checksum nor key", "put t 0 5 0 abc 1\r\nhello", KindBadValue, false},
	{"put slot plus sign is a bad key", "put t 0 5 0 +1 1\r\nhello", KindBadValue, false},
	{"put slot digit but not number", "put t 0 5 0 1x 1\r\nhello", KindBadNumber, false},
	{"put slot dash but not number", "put t 0 5 0 -x 1\r\nhello", KindBadNumber, false},
	{"put bad tx key prefix", "put t 0 5 0 -1 TXN:a:1 1\r\nhello", KindBadValue, false},
	{"put bad local key parts", "put t 0 5 0 -1 TX:a 1\r\nhello", KindBadValue, false},
	{"put bad local key counter", "put t 0 5 0 -1 TX:a:x 1\r\nhello", KindBadValue, false},
	{"put bad xa key hex", "put t 0 5 0 -1 XID:1:zz:00:q 1\r\nhello", KindBadValue, false},
	{"put bad xa key parts", "put t 0 5 0 -1 XID:1:00:q 1\r\nhello", KindBadValue, false},
	{"put bad xa format id", "put t 0 5 0 -1 XID:x:00:00:q 1\r\nhello", KindBadValue, false},
	{"put legacy bad key", "put t 0 5 0 Null 1\r\nhello", KindBadValue, false},
	{"sync bad topic", "sync a/b 0 5 0 9 -1 1\r\nhello", KindBadValue, false},
	{"sync negative partition", "sync t -1 5 0 9 -1 1\r\nhello", KindBadValue, false},
	{"sync checksum -3", "sync t 0 5 0 9 -3 1\r\nhello", KindBadValue, false},
	{"get bad topic", "get ../x g 0 0 1 1\r\n", KindBadValue, false},
	{"get dot topic", "get . g 0 0 1 1\r\n", KindBadValue, false},
	{"get dot-dot topic", "get .. g 0 0 1 1\r\n", KindBadValue, false},
	{"get dots inside a topic are valid", "get ..x g 0 0 1 1\r\n", 0, false},
	{"get negative partition", "get t g -1 0 1 1\r\n", KindBadValue, false},
	{"offset bad topic", "offset a:b g 0 0 1\r\n", KindBadValue, false},
	{"offset negative partition", "offset t g -1 0 1\r\n", KindBadValue, false},
	{"transaction bad key", "transaction KEY s BEGIN 1\r\n", KindBadValue, false},
	{"transaction lower case type", "transaction TX:s:1 s begin 1\r\n", KindBadValue, false},
	{"transaction unknown type", "transaction TX:s:1 s COMMIT 1\r\n", KindBadValue, false},
	{"transaction negative timeout", "transaction TX:s:1 s BEGIN -5 q 1\r\n", KindBadValue, false},
	{"transaction bad opaque", "transaction TX:s:1 s BEGIN x\r\n", KindBadNumber, false},
	{"transaction opaque overflow", "transaction TX:s:1 s BEGIN 5 2147483648\r\n", KindNumberRange, false},
	{"transaction timeout overflow", "transaction TX:s:1 s BEGIN 2147483648 1\r\n", KindNumberRange, false},
}

func TestDecodeMalformed(t *testing.T) {
	cases := append(generatedBadCases(), handBadCases...)
	if len(cases) < 200 {
		t.Fatalf("only %d malformed cases", len(cases))
	}
	t.Logf("%d malformed cases", len(cases))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, n, err := NewDecoder(Config{}).Decode([]byte(tc.in))
			if tc.kind == 0 { // documented near miss: valid
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Decode(%q) = %v, %d, %v; want *Error", tc.in, req, n, err)
			}
			if e.Kind != tc.kind || e.Fatal != tc.fatal {
				t.Fatalf("Decode(%q): kind %v fatal %v (%s); want kind %v fatal %v", tc.in, e.Kind, e.Fatal, e.Msg, tc.kind, tc.fatal)
			}
			if req != nil {
				t.Fatal("request returned with error")
			}
			if tc.fatal && n != 0 || !tc.fatal && n != len(tc.in) {
				t.Fatalf("consumed %d of %d (fatal %v)", n, len(tc.in), tc.fatal)
			}
			if e.NoReply != (tc.kind == KindUnknownVerb) {
				t.Fatal("NoReply must be set exactly for unknown verbs")
			}
			if e.Code != CodeInternal || e.Msg == "" || strings.ContainsAny(e.Msg, "\r\n\x00") {
				t.Fatalf("bad reply fields: %+v", e)
			}
		})
	}
}
