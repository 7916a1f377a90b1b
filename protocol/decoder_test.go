package protocol

import (
	"errors"
	"math"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

func decodeOne(t *testing.T, in string) (Request, int, error) {
	t.Helper()
	return NewDecoder(Config{}).Decode([]byte(in))
}

func TestDecodeValidRequests(t *testing.T) {
	hello := []byte("hello")
	tests := []struct {
		name string
		in   string
		want Request
	}{
		{"put with checksum", "put orders 3 5 0 123 7\r\nhello",
			&PutRequest{Topic: "orders", Partition: 3, Checksum: 123, OpaqueID: 7, Data: hello}},
		{"put checksum not supplied", "put orders 0 5 0 -1 7\r\nhello",
			&PutRequest{Topic: "orders", Checksum: -1, OpaqueID: 7, Data: hello}},
		{"put broker picks partition", "put orders -1 5 0 -1 7\r\nhello",
			&PutRequest{Topic: "orders", Partition: -1, Checksum: -1, OpaqueID: 7, Data: hello}},
		{"put in local transaction", "put orders 1 5 0 99 TX:sess:3 -2147483648\r\nhello",
			&PutRequest{Topic: "orders", Partition: 1, Checksum: 99, TxKey: "TX:sess:3", OpaqueID: math.MinInt32, Data: hello}},
		{"put in XA transaction", "put o.x_y-z 1 5 1 0 XID:1:0a:ff:q 5\r\nhello",
			&PutRequest{Topic: "o.x_y-z", Partition: 1, Flag: 1, Checksum: 0, TxKey: "XID:1:0a:ff:q", OpaqueID: 5, Data: hello}},
		{"legacy put without checksum", "put orders 2 5 4 -7\r\nhello",
			&PutRequest{Topic: "orders", Partition: 2, Flag: 4, Checksum: -1, OpaqueID: -7, Data: hello, NoChecksum: true}},
		{"legacy put in transaction", "put orders 2 5 0 TX:s:1 8\r\nhello",
			&PutRequest{Topic: "orders", Partition: 2, Checksum: -1, TxKey: "TX:s:1", OpaqueID: 8, Data: hello, NoChecksum: true}},
		{"put with null tx key", "put orders 2 5 0 null 8\r\nhello",
			&PutRequest{Topic: "orders", Partition: 2, Checksum: -1, TxKey: "null", OpaqueID: 8, Data: hello, NoChecksum: true}},
		{"put empty body", "put t 0 0 0 -1 1\r\n",
			&PutRequest{Topic: "t", Checksum: -1, OpaqueID: 1, Data: []byte{}}},
		{"put max int32 values", "put t 2147483647 5 -2147483648 2147483647 2147483647\r\nhello",
			&PutRequest{Topic: "t", Partition: math.MaxInt32, Flag: math.MinInt32, Checksum: math.MaxInt32, OpaqueID: math.MaxInt32, Data: hello}},
		{"get", "get orders grp 0 1024 65536 9\r\n",
			&GetRequest{Topic: "orders", Group: "grp", Offset: 1024, MaxSize: 65536, OpaqueID: 9}},
		{"long-poll get (ours)", "get orders grp 0 1024 65536 500 9\r\n",
			&GetRequest{Topic: "orders", Group: "grp", Offset: 1024, MaxSize: 65536, MaxWaitMs: 500, OpaqueID: 9}},
		{"get start from end offset", "get orders g 1 9223372036854775807 1 -1\r\n",
			&GetRequest{Topic: "orders", Group: "g", Partition: 1, Offset: math.MaxInt64, MaxSize: 1, OpaqueID: -1}},
		{"get maxSize zero is not a protocol error", "get t g 0 0 0 1\r\n",
			&GetRequest{Topic: "t", Group: "g", OpaqueID: 1}},
		{"get negative maxSize is not a protocol error", "get t g 0 -5 -1 1\r\n",
			&GetRequest{Topic: "t", Group: "g", Offset: -5, MaxSize: -1, OpaqueID: 1}},
		{"get permissive group", "get t g:ro/up@é 0 0 1 1\r\n",
			&GetRequest{Topic: "t", Group: "g:ro/up@é", MaxSize: 1, OpaqueID: 1}},
		{"offset", "offset orders grp 3 -9223372036854775808 4\r\n",
			&OffsetRequest{Topic: "orders", Group: "grp", Partition: 3, Offset: math.MinInt64, OpaqueID: 4}},
		{"version with opaque", "version 42\r\n", &VersionRequest{OpaqueID: 42}},
		{"version without opaque", "version\r\n", &VersionRequest{OpaqueID: NoOpaque}},
		{"stats empty item two spaces", "stats  5\r\n", &StatsRequest{OpaqueID: 5}},
		{"stats item", "stats topics 6\r\n", &StatsRequest{Item: "topics", OpaqueID: 6}},
		{"stats bare", "stats\r\n", &StatsRequest{OpaqueID: NoOpaque}},
		{"stats item without opaque", "stats realtime\r\n", &StatsRequest{Item: "realtime", OpaqueID: NoOpaque}},
		{"quit", "quit\r\n", &QuitRequest{}},
		{"transaction begin", "transaction TX:s:1 s BEGIN 3\r\n",
			&TransactionRequest{TxKey: "TX:s:1", SessionID: "s", Type: TxBegin, OpaqueID: 3}},
		{"transaction begin with timeout", "transaction TX:s:1 s BEGIN 30 3\r\n",
			&TransactionRequest{TxKey: "TX:s:1", SessionID: "s", Type: TxBegin, Timeout: 30, OpaqueID: 3}},
		{"transaction with qualifier only", "transaction XID:1:ab:cd:rm1 s RECOVER rm1 3\r\n",
			&TransactionRequest{TxKey: "XID:1:ab:cd:rm1", SessionID: "s", Type: TxRecover, UniqueQualifier: "rm1", OpaqueID: 3}},
		{"transaction negative-looking qualifier", "transaction null s RECOVER -5 3\r\n",
			&TransactionRequest{TxKey: "null", SessionID: "s", Type: TxRecover, UniqueQualifier: "-5", OpaqueID: 3}},
		{"transaction timeout and qualifier", "transaction XID:1:ab::q s PREPARE 0 123 3\r\n",
			&TransactionRequest{TxKey: "XID:1:ab::q", SessionID: "s", Type: TxPrepare, UniqueQualifier: "123", OpaqueID: 3}},
		{"transaction commit one phase", "transaction TX:s:2 s COMMIT_ONE_PHASE 1\r\n",
			&TransactionRequest{TxKey: "TX:s:2", SessionID: "s", Type: TxCommitOnePhase, OpaqueID: 1}},
		{"transaction commit two phase", "transaction TX:s:2 s COMMIT_TWO_PHASE 1\r\n",
			&TransactionRequest{TxKey: "TX:s:2", SessionID: "s", Type: TxCommitTwoPhase, OpaqueID: 1}},
		{"transaction rollback", "transaction TX:s:2 s ROLLBACK 1\r\n",
			&TransactionRequest{TxKey: "TX:s:2", SessionID: "s", Type: TxRollback, OpaqueID: 1}},
		{"transaction forget", "transaction TX:s:2 s FORGET 1\r\n",
			&TransactionRequest{TxKey: "TX:s:2", SessionID: "s", Type: TxForget, OpaqueID: 1}},
		{"transaction end", "transaction TX:s:2 s END 1\r\n",
			&TransactionRequest{TxKey: "TX:s:2", SessionID: "s", Type: TxEnd, OpaqueID: 1}},
		{"sync with checksum", "sync orders 1 5 2 123456789012 77 8\r\nhello",
			&SyncRequest{Topic: "orders", Partition: 1, Flag: 2, MsgID: 123456789012, Checksum: 77, OpaqueID: 8, Data: hello}},
		{"sync from old master", "sync orders 1 5 2 -3 8\r\nhello",
			&SyncRequest{Topic: "orders", Partition: 1, Flag: 2, MsgID: -3, Checksum: -1, OpaqueID: 8, Data: hello, NoChecksum: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, n, err := decodeOne(t, tt.in)
			if err != nil {
				t.Fatalf("Decode(%q): %v", tt.in, err)
			}
			if n != len(tt.in) {
				t.Fatalf("consumed %d, want %d", n, len(tt.in))
			}
			if !reflect.DeepEqual(req, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", req, tt.want)
			}
			if req.Opaque() != tt.want.Opaque() || req.Verb() != tt.want.Verb() {
				t.Fatal("Opaque/Verb mismatch")
			}
			// Encode → decode gives the same request.
			wire := req.AppendTo(nil)
			req2, n2, err := decodeOne(t, string(wire))
			if err != nil || n2 != len(wire) || !reflect.DeepEqual(req2, tt.want) {
				t.Fatalf("round trip via %q: %+v %d %v", wire, req2, n2, err)
			}
		})
	}
}

func TestDecodeCanonicalEncodings(t *testing.T) {
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"put", &PutRequest{Topic: "t", Partition: 1, Flag: 0, Checksum: -1, OpaqueID: 2, Data: []byte("ab")}, "put t 1 2 0 -1 2\r\nab"},
		{"put tx", &PutRequest{Topic: "t", Partition: 1, Checksum: 5, TxKey: "TX:a:1", OpaqueID: 2, Data: []byte("ab")}, "put t 1 2 0 5 TX:a:1 2\r\nab"},
		{"legacy put", &PutRequest{Topic: "t", Partition: 1, Checksum: -1, OpaqueID: 2, NoChecksum: true}, "put t 1 0 0 2\r\n"},
		{"get", &GetRequest{Topic: "t", Group: "g", Partition: 0, Offset: 10, MaxSize: 100, OpaqueID: -3}, "get t g 0 10 100 -3\r\n"},
		{"offset", &OffsetRequest{Topic: "t", Group: "g", Offset: 10, OpaqueID: 3}, "offset t g 0 10 3\r\n"},
		{"version", &VersionRequest{OpaqueID: 1}, "version 1\r\n"},
		{"stats empty item", &StatsRequest{OpaqueID: 1}, "stats  1\r\n"},
		{"stats item", &StatsRequest{Item: "topics", OpaqueID: 1}, "stats topics 1\r\n"},
		{"quit", &QuitRequest{}, "quit\r\n"},
		{"tx plain", &TransactionRequest{TxKey: "TX:a:1", SessionID: "a", Type: TxBegin, OpaqueID: 1}, "transaction TX:a:1 a BEGIN 1\r\n"},
		{"tx timeout", &TransactionRequest{TxKey: "TX:a:1", SessionID: "a", Type: TxBegin, Timeout: 5, OpaqueID: 1}, "transaction TX:a:1 a BEGIN 5 1\r\n"},
		{"tx numeric qualifier", &TransactionRequest{TxKey: "null", SessionID: "a", Type: TxRecover, UniqueQualifier: "42", OpaqueID: 1}, "transaction null a RECOVER 0 42 1\r\n"},
		{"sync", &SyncRequest{Topic: "t", Partition: 1, Flag: 0, MsgID: 9, Checksum: 3, OpaqueID: 2, Data: []byte("x")}, "sync t 1 1 0 9 3 2\r\nx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.req.AppendTo([]byte("prefix"))); got != "prefix"+tt.want {
				t.Fatalf("got %q want %q", got, tt.want)
			}
		})
	}
}

func TestDecodeNeedMore(t *testing.T) {
	in := "put t 0 5 0 -1 1\r\nhello"
	d := NewDecoder(Config{})
	for i := 0; i < len(in); i++ {
		req, n, err := d.Decode([]byte(in[:i]))
		if req != nil || n != 0 || err != nil {
			t.Fatalf("prefix %d: %v %d %v", i, req, n, err)
		}
		if i >= 18 && d.Pending() != len(in) {
			t.Fatalf("prefix %d: Pending %d", i, d.Pending())
		}
	}
	if _, n, err := d.Decode([]byte(in)); n != len(in) || err != nil {
		t.Fatal(n, err)
	}
}

func TestDecodeBodyAliasesInput(t *testing.T) {
	in := []byte("put t 0 5 0 -1 1\r\nhello")
	req, _, _ := NewDecoder(Config{}).Decode(in)
	in[len(in)-1] = 'X'
	if string(req.(*PutRequest).Data) != "hellX" {
		t.Fatal("body was copied")
	}
	if cap(req.(*PutRequest).Data) != 5 {
		t.Fatal("body capacity must be clipped so appends cannot clobber the input")
	}
}

func TestDecoderStickyFatal(t *testing.T) {
	d := NewDecoder(Config{})
	_, _, err := d.Decode([]byte("bogus\r\nversion 1\r\n"))
	if KindOf(err) != KindUnknownVerb {
		t.Fatal(err)
	}
	_, _, err2 := d.Decode([]byte("version 1\r\n"))
	if err2 != err {
		t.Fatal("fatal error must be sticky")
	}
}

// TestDecodeOversizedBodyRefusedThenSkipped: a put declaring more than
// MaxBodySize is refused as soon as its line arrives, without waiting for the
// body; the body is then thrown away as it streams in and the next request
// on the connection decodes normally.
func TestDecodeOversizedBodyRefusedThenSkipped(t *testing.T) {
	d := NewDecoder(Config{MaxBodySize: 100})
	line := "put t 0 101 0 -1 1\r\n"
	_, n, err := d.Decode([]byte(line))
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindBodyTooLarge || e.Fatal || e.Code != CodeInternal || e.NoReply {
		t.Fatalf("%#v", err)
	}
	if n != len(line) || e.Opaque != 1 || !strings.Contains(e.Msg, "101") {
		t.Fatalf("n=%d %+v", n, e)
	}
	// The body arrives in pieces, the last one with the next request.
	body := strings.Repeat("b", 101)
	for _, piece := range []string{body[:40], body[40:100]} {
		req, k, err := d.Decode([]byte(piece))
		if req != nil || err != nil || k != len(piece) {
			t.Fatalf("skipping %d bytes: %v %d %v", len(piece), req, k, err)
		}
	}
	rest := []byte(body[100:] + "version 7\r\n")
	req, k, err := d.Decode(rest)
	if req != nil || err != nil || k != 1 {
		t.Fatalf("last body byte: %v %d %v", req, k, err)
	}
	req, k, err = d.Decode(rest[1:])
	if err != nil || k != len(rest)-1 || req.Verb() != VerbVersion || req.Opaque() != 7 {
		t.Fatalf("next request: %v %d %v", req, k, err)
	}
	if _, _, err := NewDecoder(Config{MaxBodySize: 100}).Decode([]byte("put t 0 100 0 -1 1\r\n")); err != nil {
		t.Fatal("exactly the limit is allowed:", err)
	}
}

// TestDecodeOversizedBodyOverDiscardBoundIsFatal: past MaxDiscardSize the
// body is not read and the connection must close; a negative bound makes
// every oversized body fatal.
func TestDecodeOversizedBodyOverDiscardBoundIsFatal(t *testing.T) {
	for _, tc := range []struct {
		discard int
		decl    string
		fatal   bool
	}{{1000, "1000", false}, {1000, "1001", true}, {-1, "101", true}, {0, "67108864", false}, {0, "67108865", true}} {
		d := NewDecoder(Config{MaxBodySize: 100, MaxDiscardSize: tc.discard})
		_, n, err := d.Decode([]byte("put t 0 " + tc.decl + " 0 -1 1\r\n"))
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindBodyTooLarge || e.Fatal != tc.fatal {
			t.Fatalf("discard %d, declared %s: %#v", tc.discard, tc.decl, err)
		}
		if tc.fatal && (n != 0 || !strings.Contains(e.Msg, "closed")) {
			t.Fatalf("discard %d, declared %s: n=%d %s", tc.discard, tc.decl, n, e.Msg)
		}
	}
}

func TestDecodeLineLimitBoundary(t *testing.T) {
	cfg := Config{MaxLineLength: 16}
	ok := "version 12345\r\n" // 15 bytes
	if _, n, err := NewDecoder(cfg).Decode([]byte(ok)); err != nil || n != len(ok) {
		t.Fatal(n, err)
	}
	ok16 := "version 123456\r\n"
	if _, n, err := NewDecoder(cfg).Decode([]byte(ok16)); err != nil || n != len(ok16) {
		t.Fatal(n, err)
	}
	// 16 bytes buffered with no LF: cannot fit any more.
	if _, _, err := NewDecoder(cfg).Decode([]byte("version 1234567\r")); KindOf(err) != KindLineTooLong {
		t.Fatal(err)
	}
	// 15 bytes without LF yet: wait.
	if r, n, err := NewDecoder(cfg).Decode([]byte("version 1234567")); r != nil || n != 0 || err != nil {
		t.Fatal(err)
	}
}

func TestDecodeErrorMessageWording(t *testing.T) {
	_, _, err := decodeOne(t, "put t 0 abc 0 -1 1\r\n")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatal(err)
	}
	if want := `put: token 4 (len) "abc" is not a number`; e.Msg != want {
		t.Fatalf("got %q want %q", e.Msg, want)
	}
	if !errors.Is(err, &Error{Kind: KindBadNumber}) {
		t.Fatal("errors.Is by kind")
	}
	_, _, err = decodeOne(t, "get t g x 0 1 1\r\n")
	if want := `protocol: get: token 4 (partition) "x" is not a number`; err.Error() != want {
		t.Fatalf("got %q", err.Error())
	}
	long := strings.Repeat("z", 300)
	_, _, err = decodeOne(t, "get t g "+long+" 0 1 1\r\n")
	if len(err.Error()) > 150 {
		t.Fatalf("token not truncated: %d bytes", len(err.Error()))
	}
}

func TestDecodeNonFatalErrorKeepsGoing(t *testing.T) {
	in := "put bad/topic 0 5 0 -1 3\r\nhelloget t g 0 0 1 4\r\n"
	d := NewDecoder(Config{})
	_, n, err := d.Decode([]byte(in))
	var e *Error
	if !errors.As(err, &e) || e.Fatal || e.Kind != KindBadValue || e.Opaque != 3 || n != 31 {
		t.Fatalf("%+v n=%d", err, n)
	}
	req, n2, err := d.Decode([]byte(in[n:]))
	if err != nil || req.Verb() != VerbGet || n+n2 != len(in) {
		t.Fatal(req, err)
	}
}

// TestSplitInvariance is the property: feeding an input in any pieces yields
// the same events as feeding it whole.
func TestSplitInvariance(t *testing.T) {
	inputs := []string{
		"put t 0 5 0 -1 1\r\nhelloget t g 0 0 1 2\r\nversion\r\nstats  3\r\nput t 0 3 0 TX:a:1 4\r\nabctransaction TX:a:1 a BEGIN 5 5\r\nsync t 0 2 0 1 -1 6\r\nhiquit\r\n",
		"get ../x g 0 0 1 1\r\nput t -5 2 0 -1 2\r\nxyversion 9\r\noffset t g 0 0 1 2\r\nstats a b c\r\nbogus\r\nversion 1\r\n",
		"put t 0 99999999 0 -1 1\r\n" + strings.Repeat("x", 50),
		"version 1\r\nversion 2\n",
		"get t g 0 0 1 1\r\n" + strings.Repeat("a", 2000),
		"put t 0 5 0 -1 1\r\nhel",
		"stats\r\nstats x\r\nquit\r\nversion\x00\r\n",
	}
	rng := rand.New(rand.NewSource(1))
	for i, in := range inputs {
		whole := drive(Config{}, []byte(in))
		for k := 0; k <= len(in); k++ {
			got := drive(Config{}, []byte(in[:k]), []byte(in[k:]))
			if !equalEvents(got, whole) {
				t.Fatalf("input %d split at %d:\n got %q\nwant %q", i, k, got, whole)
			}
		}
		for r := 0; r < 200; r++ {
			got := drive(Config{}, randomChunks(rng, []byte(in))...)
			if !equalEvents(got, whole) {
				t.Fatalf("input %d random chunking:\n got %q\nwant %q", i, got, whole)
			}
		}
		// Byte by byte.
		var chunks [][]byte
		for j := range len(in) {
			chunks = append(chunks, []byte(in[j:j+1]))
		}
		if got := drive(Config{}, chunks...); !equalEvents(got, whole) {
			t.Fatalf("input %d byte by byte:\n got %q\nwant %q", i, got, whole)
		}
	}
}

func TestValidGroup(t *testing.T) {
	if ValidGroup("") || ValidGroup("a b") || ValidGroup("a\tb") || !ValidGroup("g-1/é") {
		t.Error("ValidGroup")
	}
}
