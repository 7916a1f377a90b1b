package protocol

import (
	"bytes"
	"math/rand"
	"reflect"
	"testing"
)

var requestSeeds = []string{
	"put t 0 5 0 -1 1\r\nhello",
	"put t 1 5 0 123 TX:s:1 -7\r\nhello",
	"put t 0 5 0 1\r\nhello",
	"put t 0 5 0 XID:1:ab:cd:q 1\r\nhello",
	"get t g 0 1024 65536 9\r\n",
	"offset t g 3 -1 4\r\n",
	"version\r\nversion 1\r\n",
	"stats  5\r\nstats topics 1\r\nstats\r\n",
	"quit\r\n",
	"transaction TX:s:1 s BEGIN 30 q 3\r\ntransaction null s RECOVER rm 4\r\ntransaction TX:s:1 s END 5\r\n",
	"sync t 1 5 2 9 77 8\r\nhellosync t 1 5 2 9 8\r\nhello",
	"put t 0 99999999 0 -1 1\r\n",
	"put t 0 1030 0 -1 1\r\n" + string(bytes.Repeat([]byte("z"), 1030)) + "version 1\r\n", // over MaxBodySize: skipped
	"get ../x g 0 0 1 1\r\nbogus\r\n",
	"version 1\n",
	"replicate 3 1 sync 7 9\r\nreplicate 3 0 async 0 1\r\nreplicate 3 1 semi 7 9\r\n",
}

// FuzzDecodeRequest: no panic, the same events whatever the chunking, and
// every decoded request re-encodes to a frame that decodes to itself.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s), int64(1))
	}
	cfg := Config{MaxLineLength: 256, MaxBodySize: 1024}
	f.Fuzz(func(t *testing.T, in []byte, seed int64) {
		whole := drive(cfg, in)
		rng := rand.New(rand.NewSource(seed))
		k := 0
		if len(in) > 0 {
			k = rng.Intn(len(in) + 1)
		}
		if got := drive(cfg, in[:k], in[k:]); !equalEvents(got, whole) {
			t.Fatalf("split at %d:\n got %q\nwant %q", k, got, whole)
		}
		if got := drive(cfg, randomChunks(rng, in)...); !equalEvents(got, whole) {
			t.Fatalf("random chunks:\n got %q\nwant %q", got, whole)
		}
		d := NewDecoder(cfg)
		buf := in
		for {
			req, n, err := d.Decode(buf)
			if err != nil {
				e := err.(*Error)
				if e.Fatal {
					return
				}
				buf = buf[n:]
				continue
			}
			if n == 0 {
				return
			}
			if n > len(buf) {
				t.Fatalf("consumed %d of %d", n, len(buf))
			}
			if req == nil { // a refused body being skipped
				buf = buf[n:]
				continue
			}
			checkRoundTrip(t, cfg, req)
			buf = buf[n:]
		}
	})
}

func checkRoundTrip(t *testing.T, cfg Config, req Request) {
	t.Helper()
	want := reflect.ValueOf(req).Elem().Interface() // copy before reuse
	wire := req.AppendTo(nil)
	req2, n, err := NewDecoder(cfg).Decode(wire)
	if err != nil || n != len(wire) {
		t.Fatalf("re-decode of %q: n=%d err=%v", wire, n, err)
	}
	got := reflect.ValueOf(req2).Elem().Interface()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip via %q:\n got %+v\nwant %+v", wire, got, want)
	}
}

func FuzzDecodeReply(f *testing.F) {
	for _, s := range []string{
		"result 200 0 1\r\n", "result 500 3 -9\r\nbad", "value 5 3\r\nhello", "value 0 1\r\nresult 301 2 2\r\n10",
		"result 200 0\r\n", "ok\r\n", "value -1 1\r\n",
	} {
		f.Add([]byte(s), int64(1))
	}
	cfg := Config{MaxLineLength: 128, MaxBodySize: 1024}
	f.Fuzz(func(t *testing.T, in []byte, seed int64) {
		whole := driveReplies(cfg, in)
		rng := rand.New(rand.NewSource(seed))
		if got := driveReplies(cfg, randomChunks(rng, in)...); !equalEvents(got, whole) {
			t.Fatalf("random chunks:\n got %q\nwant %q", got, whole)
		}
		d := NewReplyDecoder(cfg)
		buf := in
		for {
			r, n, err := d.Decode(buf)
			if err != nil || n == 0 {
				return
			}
			wire := r.AppendTo(nil)
			if !bytes.Equal(wire, buf[:n]) {
				t.Fatalf("reply re-encodes to %q, was %q", wire, buf[:n])
			}
			buf = buf[n:]
		}
	})
}

func FuzzMessageSet(f *testing.F) {
	set, _ := buildSet(4)
	f.Add(set, 10)
	f.Add(set[:len(set)-3], 0)
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0}, 3)
	f.Fuzz(func(t *testing.T, in []byte, cut int) {
		it := NewMessageIterator(in)
		var msgs []Message
		for it.Next() {
			msgs = append(msgs, it.Message())
		}
		if it.Consumed() > len(in) {
			t.Fatal("consumed past end")
		}
		// Re-encoding the messages reproduces exactly the consumed bytes.
		var again []byte
		for _, m := range msgs {
			again = AppendMessage(again, m.ID, m.Flag, m.Data)
		}
		if !bytes.Equal(again, in[:it.Consumed()]) {
			t.Fatal("re-encoding differs from consumed bytes")
		}
		// A prefix yields a prefix of the messages.
		if cut < 0 {
			cut = -cut
		}
		if len(in) > 0 {
			cut %= len(in) + 1
		} else {
			cut = 0
		}
		it2 := NewMessageIterator(in[:cut])
		i := 0
		for it2.Next() {
			if i >= len(msgs) || it2.Message().Offset != msgs[i].Offset {
				t.Fatal("prefix iteration diverged")
			}
			i++
		}
		if it2.Consumed() > it.Consumed() && it.Err() == nil {
			t.Fatal("prefix consumed more than whole")
		}
		for _, m := range msgs {
			_, _, _ = m.Attribute()
		}
	})
}
