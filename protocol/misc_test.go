package protocol

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestCodesTable(t *testing.T) {
	want := map[int32]bool{100: false, 200: false, 401: false, 301: false, 400: false, 403: false, 404: false, 409: false, 500: false, 503: true, 504: true}
	if len(Codes) != len(want) {
		t.Fatal(len(Codes))
	}
	for code, retry := range want {
		c, ok := LookupCode(code)
		if !ok || c.Retriable != retry || Retriable(code) != retry || c.Name == "" {
			t.Errorf("%d: %+v", code, c)
		}
	}
	if _, ok := LookupCode(418); ok || CodeName(418) != "Code418" || Retriable(418) {
		t.Error("unknown code")
	}
}

func TestXAErrorBody(t *testing.T) {
	codes := []int32{XAErrNOTA, XAErrProto, XAErrRM, XAErrRMFail, XARBOther, XARBTimeout, XAHeurRB, XAHeurCom, XAHeurHaz}
	wantNums := []int32{-4, -6, -3, -7, 104, 106, 6, 7, 8}
	for i, c := range codes {
		if c != wantNums[i] {
			t.Fatalf("code %d = %d", i, c)
		}
		body := AppendXAError(nil, c, "no tx, really: TX:a:1")
		e, err := ParseXAError(string(body))
		if err != nil || e.Code != c || e.Msg != "no tx, really: TX:a:1" {
			t.Fatal(string(body), e, err)
		}
		if XACodeName(c)[:2] != "XA" {
			t.Fatal(XACodeName(c))
		}
	}
	if got := string(AppendXAError(nil, -4, "x")); got != "XAException:code=-4,msg=x" {
		t.Fatal(got)
	}
	for _, bad := range []string{"", "code=1", "XAException:code=,msg=x", "XAException:code=x,msg=y", "XAException:code=+1,msg=y"} {
		if _, err := ParseXAError(bad); !errors.Is(err, ErrBadXAError) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if e, err := ParseXAError("XAException:code=7"); err != nil || e.Code != 7 || e.Msg != "" {
		t.Error(e, err)
	}
}

func TestTxKeys(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want TxKey
		out  string
	}{
		{"local", "TX:sess-1:42", LocalTxKey("sess-1", 42), ""},
		{"xa", "XID:123:0a1b:ff:rm", XATxKey(123, []byte{0x0a, 0x1b}, []byte{0xff}, "rm"), ""},
		{"xa upper hex normalised", "XID:1:AB:CD:q", XATxKey(1, []byte{0xab}, []byte{0xcd}, "q"), "XID:1:ab:cd:q"},
		{"xa empty bqual and qualifier", "XID:-1:00::", XATxKey(-1, []byte{0}, []byte{}, ""), ""},
		{"null", "null", TxKey{Kind: TxKeyNull}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseTxKey(tt.in)
			if err != nil || !reflect.DeepEqual(k, tt.want) {
				t.Fatalf("%+v %v", k, err)
			}
			out := tt.out
			if out == "" {
				out = tt.in
			}
			if k.String() != out {
				t.Fatalf("String %q", k.String())
			}
		})
	}
	for _, bad := range []string{"", "Null", "TX:", "TX::1", "TX:a", "TX:a:b", "TX:a:1:2", "TX:a:01", "XID:1:0:0:q", "XID:1:00:00", "XID:x:00:00:q", "XID:1:00:00:q:r", "TX:a b:1", "tx:a:1"} {
		if _, err := ParseTxKey(bad); !errors.Is(err, ErrBadTxKey) {
			t.Errorf("%q accepted", bad)
		}
	}
	for ty := TxBegin; ty <= TxEnd; ty++ {
		if got, ok := ParseTxType(ty.String()); !ok || got != ty {
			t.Error(ty)
		}
	}
}

func TestStatsBody(t *testing.T) {
	lines := []StatsLine{{"pid", "123"}, {"orders", "partitions 4 message_count 10"}, {"reset", "ok"}, {"empty", ""}}
	body := AppendStatsBody(nil, lines)
	want := "STATS\r\npid 123\r\norders partitions 4 message_count 10\r\nreset ok\r\nempty\r\nEND\r\n" // a key alone, as MetaQ writes `stats <topic>`'s first line
	if string(body) != want {
		t.Fatalf("%q", body)
	}
	got, err := ParseStatsBody(body)
	if err != nil || !reflect.DeepEqual(got, lines) {
		t.Fatal(got, err)
	}
	if got, err := ParseStatsBody([]byte("STATS\r\nEND\r\n")); err != nil || len(got) != 0 {
		t.Fatal(got, err)
	}
	for _, bad := range []string{"", "pid 1\r\nEND\r\n", "STATS\r\npid 1\r\n", "STATS\r\nEND\r\nx", "STATS\r\npid 1"} {
		if _, err := ParseStatsBody([]byte(bad)); !errors.Is(err, ErrBadStats) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if !bytes.HasPrefix(AppendStatsLine(nil, "a", "b"), []byte("a b\r\n")) {
		t.Fatal()
	}
}

func TestKindAndVerbStrings(t *testing.T) {
	for k := KindUnknownVerb; k <= KindBodyTooLarge; k++ {
		if k.String() == "" || k.String()[0] == 'E' {
			t.Error(k)
		}
	}
	if VerbPut.String() != "put" || Verb(99).String() != "unknown" || ErrorKind(99).String() == "" {
		t.Error()
	}
}

func TestErrorAppendReply(t *testing.T) {
	_, _, err := NewDecoder(Config{}).Decode([]byte("get t g x 0 1 12\r\n"))
	e := err.(*Error)
	want := "result 500 44 12\r\nget: token 4 (partition) \"x\" is not a number"
	if got := string(e.AppendReply(nil)); got != want {
		t.Fatalf("%q", got)
	}
}
