package broker_test

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/protocol"
)

// malEnd is what a malformed-input case leaves behind.
type malEnd int

const (
	stayOpen malEnd = iota // the connection still answers a probe
	closes                 // the broker closes the connection
)

// probe is sent after every stayOpen case; its reply proves the connection
// (and its framing) survived.
const probeOpaque = 424242

var probe = fmt.Sprintf("version %d\r\n", probeOpaque)

type malCase struct {
	name  string
	in    string
	want  []int32 // reply codes that must arrive (any order)
	maybe []int32 // reply codes that may arrive (async replies lost to a close)
	end   malEnd
	// tx: exactly one reply, a 500 with an XAException body (transactions
	// refused) or, once the broker implements transactions, whatever code
	// protocol §7 gives; either way a well-formed reply within 1 s.
	tx bool
}

func txCase(name, in string) malCase { return malCase{name: name, in: in, end: stayOpen, tx: true} }

func open(name, in string, want ...int32) malCase {
	return malCase{name: name, in: in, want: want, end: stayOpen}
}

func closing(name, in string, want ...int32) malCase {
	return malCase{name: name, in: in, want: want, end: closes}
}

func crc(s string) int32 { return protocol.Checksum([]byte(s)) }

// malTopics is the broker configuration of the malformed-input test.
var malTopics = map[string]int{"mal": 2, "canary": 1, "crc": 1}

// numericCases substitutes bad numbers into every numeric token of a valid
// line of each verb. A bad length token loses framing: 500 and close; any
// other bad token: 500 and the connection goes on.
func numericCases() []malCase {
	bad32 := []string{"abc", "+1", "01", "-0", "1.5", "0x10", "2147483648", "-2147483649", "99999999999999999999999"}
	bad64 := []string{"abc", "007", "1.0", "9223372036854775808", "-9223372036854775809"}
	type base struct {
		name         string
		line         string
		body         string
		int32, int64 []int
		lenAt        int
	}
	bases := []base{
		{"put", fmt.Sprintf("put mal 0 5 0 %d 7", crc("hello")), "hello", []int{2, 3, 4, 5, 6}, nil, 3},
		{"legacy put", "put mal 0 5 0 7", "hello", []int{2, 3, 4, 5}, nil, 3},
		{"get", "get mal g 0 0 1024 7", "", []int{3, 5, 6}, []int{4}, -1},
		{"offset", "offset mal g 0 0 7", "", []int{3, 5}, []int{4}, -1},
		{"version", "version 7", "", []int{1}, nil, -1},
		{"stats", "stats x 7", "", []int{2}, nil, -1},
		{"transaction", "transaction TX:s:1 s BEGIN 10 q 7", "", []int{4, 6}, nil, -1},
		{"sync", "sync mal 0 5 0 9 -1 7", "hello", []int{2, 3, 4, 6, 7}, []int{5}, 3},
	}
	var out []malCase
	add := func(b base, i int, tok string) {
		toks := strings.Split(b.line, " ")
		toks[i] = tok
		in := strings.Join(toks, " ") + "\r\n" + b.body
		name := fmt.Sprintf("%s token %d is %q", b.name, i+1, tok)
		if i == b.lenAt {
			out = append(out, closing(name+" (length: framing lost)", in, 500))
		} else {
			out = append(out, open(name, in, 500))
		}
	}
	for _, b := range bases {
		for _, i := range b.int32 {
			for _, tok := range bad32 {
				add(b, i, tok)
			}
		}
		for _, i := range b.int64 {
			for _, tok := range bad64 {
				add(b, i, tok)
			}
		}
	}
	return out
}

func handCases() []malCase {
	hello := func(line string) string { return line + "\r\nhello" }
	putOK := fmt.Sprintf("put mal 0 5 0 %d 1\r\nhello", crc("hello"))
	long := strings.Repeat("t", 2000)
	over := strings.Repeat("o", 2097153) // one byte over the default maxMessageSize
	statsAt := func(total int) string {  // a stats line of exactly total bytes, CRLF included
		return "stats " + strings.Repeat("s", total-len("stats ")-len(" 1\r\n")) + " 1\r\n"
	}
	cases := []malCase{
		// Unknown verbs: the connection is closed without a reply.
		closing("unknown verb", "foo 1\r\n"),
		closing("upper case verb", "PUT mal 0 0 0 -1 1\r\n"),
		closing("empty line", "\r\n"),
		closing("leading space", " version 1\r\n"),
		closing("reply verb sent to the broker", "result 200 0 1\r\n"),
		closing("value verb sent to the broker", "value 0 1\r\n"),
		closing("verb prefix only", "ver 1\r\n"),
		closing("verb with suffix", "versions 1\r\n"),
		closing("HTTP request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		closing("unknown verb after valid requests", "version 1\r\nversion 2\r\nbogus\r\n", 200, 200),
		closing("unknown verb ends a pipeline", "version 1\r\nbogus\r\nversion 2\r\n", 200),
		closing("high bytes verb", "\xff\xfe\xfd 1\r\n"),
		closing("UTF-8 verb", "vérsion 1\r\n"),

		// Line framing: 500 and close.
		closing("bare LF", "version 1\n", 500),
		closing("bare LF only", "\n", 500),
		closing("bare LF put", "put mal 0 0 0 -1 1\n", 500),
		closing("bare LF after a valid request", "version 1\r\nversion 2\n", 200, 500),
		closing("CR CR LF", "version 1\r\r\n", 500),
		closing("NUL in line", "version\x001\r\n", 500),
		closing("NUL bytes only", "\x00\x00\x00\x00\r\n", 500),
		closing("NUL in topic", "get mal\x00 g 0 0 1 1\r\n", 500),
		closing("NUL in group", "get mal g\x00 0 0 1 1\r\n", 500),
		closing("tab separator", "version\t1\r\n", 500),
		closing("CR inside line", "vers\rion 1\r\n", 500),
		closing("DEL char", "get mal\x7f g 0 0 1 1\r\n", 500),
		closing("escape sequence", "stats \x1b[2J 1\r\n", 500),
		closing("bell in put line", hello("put mal\x07 0 5 0 -1 1"), 500),
		closing("TLS client hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n", 500),
		closing("1024 NUL bytes", strings.Repeat("\x00", 1024), 500),
		closing("oversized line without LF", strings.Repeat("a", 1024), 500),
		closing("oversized line with late LF", "get "+long+" g 0 0 1 1\r\n", 500),
		closing("oversized put line", "put "+long, 500),
		closing("line one byte over the limit", statsAt(1025), 500),
		open("line exactly at the limit", statsAt(1024), 200),

		// Bodies.
		// A body over maxMessageSize (2 MiB) is refused and thrown away; the
		// connection stays. Over the discard bound (64 MiB) it is not read.
		open("oversized put body", "put mal 0 2097153 0 -1 1\r\n"+over, 500),
		open("oversized legacy put body", "put mal 0 2097153 0 1\r\n"+over, 500),
		open("oversized put in tx", "put mal 0 2097153 0 -1 TX:s:1 1\r\n"+over, 500),
		open("oversized sync body", "sync mal 0 2097153 0 1 -1 1\r\n"+over, 500),
		open("oversized put body then a put", "put mal 0 2097153 0 -1 1\r\n"+over+putOK, 500, 200),
		closing("oversized put body over the discard bound", "put mal 0 67108865 0 -1 1\r\n", 500),
		closing("oversized put body max int32", "put mal 0 2147483647 0 -1 1\r\n", 500),
		closing("negative put length", "put mal 0 -1 0 -1 1\r\n", 500),
		closing("min int32 put length", "put mal 0 -2147483648 0 -1 1\r\n", 500),
		closing("overflowing put length", "put mal 0 99999999999 0 -1 1\r\n", 500),
		closing("negative sync length", "sync mal 0 -5 0 1 -1 1\r\n", 500),
		closing("body one byte shorter than declared: next line loses its first byte",
			fmt.Sprintf("put mal 0 6 0 %d 1\r\nhello", crc("hello!"))+"version 2\r\n", 500),
		closing("body one byte longer than declared: extra byte starts the next line",
			fmt.Sprintf("put mal 0 4 0 %d 1\r\nhello", crc("hello"))+"version 2\r\n", 500),
		{name: "body one byte longer with a matching checksum", end: closes, maybe: []int32{200},
			in: fmt.Sprintf("put mal 0 4 0 %d 1\r\nhello", crc("hell")) + "version 2\r\n"},
		open("zero-length body", "put mal 1 0 0 0 1\r\n", 200),
		open("zero-length body without checksum", "put mal 1 0 0 -1 1\r\n", 200),
		open("NUL bytes in body", fmt.Sprintf("put mal 1 4 0 %d 1\r\n\x00\x00\x00\x00", crc("\x00\x00\x00\x00")), 200),
		open("body holding a request", fmt.Sprintf("put mal 1 11 0 %d 1\r\nversion 9\r\n", crc("version 9\r\n")), 200),
		open("body with bare LF and control chars", fmt.Sprintf("put mal 1 5 0 %d 1\r\n\n\x01\x7f\r\x1b", crc("\n\x01\x7f\r\x1b")), 200),
		open("pipelined puts across partitions", putOK+fmt.Sprintf("put mal 1 5 0 %d 2\r\nhello", crc("hello")), 200, 200),
		open("put with bad checksum", "put mal 0 5 0 12345 1\r\nhello", 500),
		open("put with checksum of other data", fmt.Sprintf("put mal 0 5 0 %d 1\r\nhello", crc("hellp")), 500),
		open("put with checksum max int32", "put mal 0 5 0 2147483647 1\r\nhello", 500),
		open("sync with bad checksum", "sync mal 0 5 0 9 12345 1\r\nhello", 503),

		// Spacing: fatal when a body follows (framing lost), else 500 and go on.
		closing("put double space", hello("put mal  0 5 0 -1 1"), 500),
		closing("put trailing space", hello("put mal 0 5 0 -1 1 "), 500),
		closing("put leading double space", hello("put  mal 0 5 0 -1 1"), 500),
		closing("sync double space", hello("sync mal 0 5 0  9 -1 1"), 500),
		open("get double space", "get mal g  0 0 1 1\r\n", 500),
		open("get trailing space", "get mal g 0 0 1 1 \r\n", 500),
		open("offset double space", "offset mal  g 0 0 1\r\n", 500),
		open("version double space", "version  1\r\n", 500),
		open("version trailing space", "version \r\n", 500),
		open("stats trailing space", "stats \r\n", 500),
		open("stats double space after item", "stats x  1\r\n", 500),
		open("stats three spaces", "stats   1\r\n", 500),
		open("quit trailing space", "quit \r\n", 500),
		open("transaction double space", "transaction TX:s:1  s BEGIN 1\r\n", 500),
		open("verb followed by a space only", "get \r\n", 500),

		// Token counts.
		closing("put verb only", "put\r\n", 500),
		closing("put without length", "put mal 0\r\n", 500),
		closing("put five tokens", hello("put mal 0 5 0"), 500),
		closing("put nine tokens", hello("put mal 0 5 0 -1 TX:a:1 1 2"), 500),
		closing("put many tokens", hello("put mal 0 5 0 1 2 3 4 5 6 7 8 9"), 500),
		closing("sync six tokens", hello("sync mal 0 5 0 9"), 500),
		closing("sync nine tokens", hello("sync mal 0 5 0 9 -1 1 2"), 500),
		open("get five tokens", "get mal g 0 0 1\r\n", 500),
		open("get nine tokens", "get mal g 0 0 1 1 1 1\r\n", 500),
		open("long-poll get with zero wait", "get mal g 0 0 1 0 1\r\n", 500),
		open("get verb only", "get\r\n", 500),
		open("get many tokens", "get a b c d e f g h i j k\r\n", 500),
		open("offset four tokens", "offset mal g 0 1\r\n", 500),
		open("offset seven tokens", "offset mal g 0 0 1 1\r\n", 500),
		open("offset verb only", "offset\r\n", 500),
		open("version extra token", "version 1 2\r\n", 500),
		open("stats four tokens", "stats a 1 2\r\n", 500),
		open("quit extra token", "quit now\r\n", 500),
		open("transaction four tokens", "transaction TX:s:1 s BEGIN\r\n", 500),
		open("transaction eight tokens", "transaction TX:s:1 s BEGIN 1 q x 1\r\n", 500),
		open("transaction verb only", "transaction\r\n", 500),

		// Values the decoder refuses.
		open("put topic with slash", hello("put a/b 0 5 0 -1 1"), 500),
		open("put topic escaping the data dir", hello("put ../x 0 5 0 -1 1"), 500),
		open("put topic too long", hello("put "+strings.Repeat("t", 256)+" 0 5 0 -1 1"), 500),
		open("put topic not ASCII", hello("put tøpic 0 5 0 -1 1"), 500),
		open("put partition -2", hello("put mal -2 5 0 -1 1"), 500),
		open("put checksum -2", hello("put mal 0 5 0 -2 1"), 500),
		open("put tx with partition -1", hello("put mal -1 5 0 -1 TX:a:1 1"), 500),
		open("put slot neither checksum nor key", hello("put mal 0 5 0 abc 1"), 500),
		open("put bad tx key", hello("put mal 0 5 0 -1 TXN:a:1 1"), 500),
		open("put bad XA key", hello("put mal 0 5 0 -1 XID:1:zz:00:q 1"), 500),
		open("sync bad topic", hello("sync a/b 0 5 0 9 -1 1"), 500),
		open("sync negative partition", hello("sync mal -1 5 0 9 -1 1"), 500),
		open("get bad topic", "get ../x g 0 0 1 1\r\n", 500),
		open("get negative partition", "get mal g -1 0 1 1\r\n", 500),
		open("offset bad topic", "offset a:b g 0 0 1\r\n", 500),
		open("offset negative partition", "offset mal g -1 0 1\r\n", 500),
		open("transaction bad key", "transaction KEY s BEGIN 1\r\n", 500),
		open("transaction lower case type", "transaction TX:s:1 s begin 1\r\n", 500),
		open("transaction unknown type", "transaction TX:s:1 s COMMIT 1\r\n", 500),
		open("transaction negative timeout", "transaction TX:s:1 s BEGIN -5 q 1\r\n", 500),

		// Well-formed requests the broker refuses.
		open("put to an unknown topic", hello(fmt.Sprintf("put nosuch 0 5 0 %d 1", crc("hello"))), 500),
		open("legacy put to an unknown topic", hello("put nosuch 0 5 0 1"), 500),
		open("put to partition out of range", hello(fmt.Sprintf("put mal 2 5 0 %d 1", crc("hello"))), 500),
		open("put to partition max int32", hello(fmt.Sprintf("put mal 2147483647 5 0 %d 1", crc("hello"))), 500),
		open("put partition -1 lets the broker pick", hello(fmt.Sprintf("put mal -1 5 0 %d 1", crc("hello"))), 200),
		open("legacy put without checksum", hello("put mal 0 5 0 1"), 200),
		open("put with negative flag", hello(fmt.Sprintf("put mal 0 5 -2147483648 %d 1", crc("hello"))), 200),
		txCase("put in a local transaction", hello(fmt.Sprintf("put mal 0 5 0 %d TX:s:1 1", crc("hello")))),
		txCase("put in an XA transaction", hello(fmt.Sprintf("put mal 0 5 0 %d XID:1:0a:0b:q 1", crc("hello")))),
		txCase("legacy put in a transaction", hello("put mal 0 5 0 TX:s:1 1")),
		open("get unknown topic", "get nosuch g 0 0 1024 1\r\n", 404),
		open("get partition out of range", "get mal g 2 0 1024 1\r\n", 404),
		open("get partition max int32", "get mal g 2147483647 0 1024 1\r\n", 404),
		open("get maxSize 0", "get mal g 0 0 0 1\r\n", 400),
		open("get maxSize -1", "get mal g 0 0 -1 1\r\n", 400),
		open("get maxSize min int32", "get mal g 0 0 -2147483648 1\r\n", 400),
		open("get maxSize 0 on unknown topic", "get nosuch g 0 0 0 1\r\n", 400),
		open("get offset max int64 asks for the end", "get crc g 0 9223372036854775807 1024 1\r\n", 301),
		open("get offset far beyond the end", "get crc g 0 1099511627776 1024 1\r\n", 404),
		open("get offset -1", "get crc g 0 -1 1024 1\r\n", 301),
		open("get offset min int64", "get crc g 0 -9223372036854775808 1024 1\r\n", 301),
		open("get maxSize 1", "get crc g 0 0 1 1\r\n", 404),
		open("get group with odd characters", "get crc a:b/c\\d 0 0 1024 1\r\n", 404),
		open("offset unknown topic", "offset nosuch g 0 0 1\r\n", 404),
		open("offset partition out of range", "offset mal g 2 0 1\r\n", 404),
		open("offset negative offset", "offset crc g 0 -5 1\r\n", 200),
		open("offset min int64", "offset crc g 0 -9223372036854775808 1\r\n", 200),
		open("offset max int64", "offset crc g 0 9223372036854775807 1\r\n", 200),

		// Admin verbs.
		open("version without opaque", "version\r\n", 200),
		open("version negative opaque", "version -2147483648\r\n", 200),
		open("stats without opaque", "stats\r\n", 200),
		open("stats empty item", "stats  1\r\n", 200),
		open("stats unknown item", "stats nosuch 1\r\n", 200),
		open("stats config", "stats config 1\r\n", 200),
		open("stats reset", "stats reset 1\r\n", 200),
		closing("quit", "quit\r\n"),
		closing("quit then more requests", "quit\r\nversion 1\r\n"),

		// Transactions are refused with an XA error; END has no reply; sync is unsupported.
		txCase("transaction BEGIN", "transaction TX:s:1 s BEGIN 1\r\n"),
		txCase("transaction BEGIN with timeout", "transaction TX:s:1 s BEGIN 30 1\r\n"),
		txCase("transaction PREPARE", "transaction XID:1:0a:0b:q s PREPARE 1\r\n"),
		txCase("transaction COMMIT_ONE_PHASE", "transaction TX:s:1 s COMMIT_ONE_PHASE 1\r\n"),
		txCase("transaction COMMIT_TWO_PHASE", "transaction XID:1:0a:0b:q s COMMIT_TWO_PHASE 1\r\n"),
		txCase("transaction ROLLBACK", "transaction TX:s:1 s ROLLBACK 1\r\n"),
		txCase("transaction RECOVER", "transaction null s RECOVER q 1\r\n"),
		txCase("transaction FORGET", "transaction XID:1:0a:0b:q s FORGET 1\r\n"),
		open("transaction END has no reply", "transaction TX:s:1 s END 1\r\n"),
		open("sync", hello("sync mal 0 5 0 9 -1 1"), 503),
		open("sync legacy without checksum", hello("sync mal 0 5 0 9 1"), 503),
		open("sync zero length", "sync mal 0 0 0 9 0 1\r\n", 503),
	}
	return cases
}

// runMalCase sends one case on a fresh connection and checks what comes back
// within one second.
func runMalCase(t *testing.T, addr string, tc malCase) {
	c := brokertest.Dial(t, addr)
	defer c.Close()
	in := tc.in
	if tc.end == stayOpen {
		in += probe
	}
	c.Send(t, in)
	deadline := time.Now().Add(time.Second)
	want := slices.Clone(tc.want)
	var got []string
	probed := false
	txReplies := 0
	for {
		left := time.Until(deadline)
		require.Positive(t, left, "no complete answer within 1s; got %q, still want %v (probe seen %v)", got, want, probed)
		r, closed, err := readOne(c, left)
		require.NoError(t, err, "got %q so far, still want %v", got, want)
		if closed {
			require.Equal(t, closes, tc.end, "connection closed; got %q, still want %v", got, want)
			require.Empty(t, want, "connection closed before these replies: got %q", got)
			return
		}
		got = append(got, r.line)
		if r.opaque == probeOpaque && r.code == 200 && !probed && tc.end == stayOpen {
			probed = true
		} else if tc.tx {
			txReplies++
			require.Equal(t, 1, txReplies, "one reply per request: %q", got)
			if r.code == 500 {
				require.True(t, strings.HasPrefix(string(r.body), "XAException:code="), "body %q", r.body)
			}
		} else if i := slices.Index(want, r.code); i >= 0 {
			want = slices.Delete(want, i, i+1)
		} else {
			require.Contains(t, tc.maybe, r.code, "unexpected reply %q %q", r.line, r.body)
		}
		if tc.end == stayOpen && probed && len(want) == 0 && (!tc.tx || txReplies == 1) {
			return
		}
	}
}

// TestMalformedInput throws every kind of bad request at a live broker: each
// gets its error reply or a close within 1 s, a well-behaved client on
// another connection never notices, the broker keeps its memory and still
// answers stats.
func TestMalformedInput(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Modify: func(o *broker.Options) {
		o.Topic = topicsOnly(malTopics)
		o.Topics = []string{"mal", "canary", "crc"}
	}})
	addr := b.Addr()
	cases := append(numericCases(), handCases()...)
	require.GreaterOrEqual(t, len(cases), 200)
	t.Logf("%d malformed-input cases", len(cases))
	seen := map[string]bool{}
	for _, tc := range cases {
		require.False(t, seen[tc.name], "duplicate case name %q", tc.name)
		seen[tc.name] = true
	}

	// Warm up, then take the baseline.
	for _, tc := range cases[:20] {
		runMalCase(t, addr, tc)
	}
	before := heapInuse()
	goroutines := runtime.NumGoroutine()

	cn := startCanary(t, addr, "canary")
	for round := 0; round < 2; round++ {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) { runMalCase(t, addr, tc) })
		}
	}
	cn.finish(t)

	// A bad checksum stored nothing.
	require.Equal(t, "0", partitionEnd(t, addr, "crc", 0))

	// Every connection is gone, goroutines and memory are back near the baseline.
	require.Eventually(t, func() bool { return statsValue(t, addr, "curr_connections") == "1" },
		5*time.Second, 20*time.Millisecond, "connections of the malformed cases must all be closed")
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= goroutines+5 },
		5*time.Second, 20*time.Millisecond, "goroutines leaked: %d, baseline %d", runtime.NumGoroutine(), goroutines)
	after := heapInuse()
	t.Logf("heap in use: %d KiB before, %d KiB after %d cases", before>>10, after>>10, 2*len(cases))
	require.Less(t, after, before+32<<20, "heap grew by %d KiB", (after-before)>>10)

	c := brokertest.Dial(t, addr)
	c.Send(t, "stats  3\r\n")
	expectReply(t, c, 200, 3)
	require.NotEqual(t, "0", statsValue(t, addr, "put_failed"))
}

func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// partitionEnd returns max_offset of a partition from `stats offsets`.
func partitionEnd(t testing.TB, addr, topic string, part int) string {
	t.Helper()
	c := brokertest.Dial(t, addr)
	defer c.Close()
	c.Send(t, "stats offsets 1\r\n")
	r := expectReply(t, c, 200, 1)
	lines, err := protocol.ParseStatsBody(r.body)
	require.NoError(t, err)
	prefix := fmt.Sprintf("part %d min_offset ", part)
	for _, l := range lines {
		if l.Key == topic && strings.HasPrefix(l.Value, prefix) {
			f := strings.Fields(l.Value)
			return f[len(f)-1]
		}
	}
	t.Fatalf("no partition %s-%d in stats offsets", topic, part)
	return ""
}

// TestOneByteWrites sends a pipeline byte by byte and whole: the replies are
// the same.
func TestOneByteWrites(t *testing.T) {
	pipeline := strings.Join([]string{
		"version 1\r\n",
		putLine("bytes", 0, "first", 2),
		"put bytes 1 6 0 3\r\nlegacy",
		"get bytes g 0 0 0 4\r\n",
		"get bytes g 9 0 100 5\r\n",
		"get bytes g 0 x 100 6\r\n",
		"stats help 7\r\n",
		"transaction TX:s:1 s BEGIN 8\r\n",
		"transaction TX:s:1 s END 9\r\n",
		putLine("bytes", 0, strings.Repeat("large body ", 300), 10),
		"sync bytes 0 3 0 9 -1 11\r\nabc",
		"version 12\r\n",
	}, "")
	run := func(byByte bool) map[int32]string {
		b := brokertest.Start(t, brokertest.Options{Partitions: 2})
		c := brokertest.Dial(t, b.Addr())
		if byByte {
			for i := 0; i < len(pipeline); i++ {
				c.Send(t, pipeline[i:i+1])
			}
		} else {
			c.Send(t, pipeline)
		}
		out := map[int32]string{}
		for len(out) < 11 { // every request but END is answered
			r, closed, err := readOne(c, 5*time.Second)
			require.NoError(t, err)
			require.False(t, closed)
			body := string(r.body)
			if r.opaque == 2 || r.opaque == 3 || r.opaque == 10 { // msgId differs between brokers
				body = body[strings.IndexByte(body, ' '):]
			}
			out[r.opaque] = fmt.Sprintf("%d %s", r.code, body)
		}
		c.Send(t, "version 13\r\n")
		expectReply(t, c, 200, 13) // and nothing else (no reply to END)
		return out
	}
	whole, bytewise := run(false), run(true)
	require.Equal(t, whole, bytewise)
	require.True(t, strings.HasPrefix(whole[2], "200  0 0"), whole[2])
	require.True(t, strings.HasPrefix(whole[10], "200  0 25"), whole[10])
}

// TestUnknownTopicNamesKeepMemoryBounded sends requests naming ever new
// topics the broker does not serve: answering them must not keep anything
// per name.
func TestUnknownTopicNamesKeepMemoryBounded(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Modify: func(o *broker.Options) {
		o.Topic = topicsOnly(map[string]int{"real": 1})
		o.Topics = []string{"real"}
	}})
	c := brokertest.Dial(t, b.Addr())
	kinds := []string{"stats %s 1\r\n", "get %s g 0 0 0 2\r\n", "get %s g 0 0 100 3\r\n", "offset %s g 0 0 4\r\n", "put %s 0 1 0 -1 5\r\nx"}
	send := func(from, n int) {
		var sb strings.Builder
		for i := from; i < from+n; i++ { // each name in one request, every kind of request in turn
			fmt.Fprintf(&sb, kinds[i%len(kinds)], fmt.Sprintf("%s%08d", strings.Repeat("x", 200), i))
		}
		werr := make(chan error, 1)
		go func() {
			_ = c.SetWriteDeadline(time.Now().Add(time.Minute))
			_, err := c.Write([]byte(sb.String()))
			werr <- err
		}()
		for i := 0; i < n; i++ {
			r, closed, err := readOne(c, 20*time.Second)
			require.NoError(t, err, "reply %d: %q", i, r.line)
			require.False(t, closed, "reply %d", i)
			require.Contains(t, []int32{200, 400, 404, 500}, r.code, r.line)
		}
		require.NoError(t, <-werr)
	}
	send(0, 1000) // warm up buffers
	before := heapInuse()
	const names = 12000 // about 4 MiB if the broker kept counters per name
	send(1000, names)
	after := heapInuse()
	t.Logf("heap in use: %d KiB before, %d KiB after %d requests naming %d unknown topics", before>>10, after>>10, names, names)
	require.Less(t, after, before+2<<20, "heap grew by %d KiB: the broker keeps state per unknown topic name", (after-before)>>10)
}
