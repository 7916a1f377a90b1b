package store_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/metaq-go/metaq/broker/store"
)

// TestZeroFilledTail: a crash can leave zeros after the last written byte
// (delayed allocation). Zeros decode as empty messages with a valid
// checksum; recovery must stop at the last real message and truncate there.
func TestZeroFilledTail(t *testing.T) {
	log, starts := buildLog(3)
	cases := []struct {
		name string
		seg  []byte
		want int // messages
	}{
		{"4096 zero bytes after 3 messages", append(append([]byte(nil), log...), make([]byte, 4096)...), 3},
		{"19 zero bytes (less than a header)", append(append([]byte(nil), log...), make([]byte, 19)...), 3},
		{"torn third message then zeros", append(append([]byte(nil), log[:starts[2]+7]...), make([]byte, 4096)...), 2},
		{"only zeros", make([]byte, 4096), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			end, recs, size := recoverBytes(t, c.seg)
			if len(recs) != c.want || end != starts[c.want] || size != starts[c.want] {
				t.Fatalf("recovered %d messages, end %d, file size %d; want %d messages ending at %d",
					len(recs), end, size, c.want, starts[c.want])
			}
		})
	}
}

// TestGarbageTail: random bytes after the last message never become a
// message.
func TestGarbageTail(t *testing.T) {
	log, starts := buildLog(3)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 50; i++ {
		junk := make([]byte, 1+rng.IntN(4096))
		for j := range junk {
			junk[j] = byte(rng.Uint32())
		}
		end, recs, size := recoverBytes(t, append(append([]byte(nil), log...), junk...))
		if len(recs) != 3 || end != starts[3] || size != starts[3] {
			t.Fatalf("case %d: recovered %d messages, end %d, size %d", i, len(recs), end, size)
		}
	}
}

// TestValidPrefix is the one check every served message set passes.
func TestValidPrefix(t *testing.T) {
	log, starts := buildLog(4)
	corrupt := func(at int64) []byte {
		b := append([]byte(nil), log...)
		b[at+store.HeaderSize] ^= 1
		return b
	}
	zeroHdr := make([]byte, store.HeaderSize)
	cases := []struct {
		name    string
		data    []byte
		want    int64 // bytes served; -1 = error
		wantErr error
	}{
		{"all valid", log, starts[4], nil},
		{"torn last message is cut off", log[:starts[3]+5], starts[3], nil},
		{"torn last header is cut off", log[:starts[3]+3], starts[3], nil},
		{"part of a single large message is served for the client to grow maxSize", log[:starts[1]-1], starts[1] - 1, nil},
		{"corrupt first message is an error", corrupt(0), -1, store.ErrCorrupt},
		{"corrupt middle message cuts before it", corrupt(starts[2]), starts[2], nil},
		{"zero-filled region after messages is cut", append(append([]byte(nil), log...), make([]byte, 100)...), starts[4], nil},
		{"zero-filled region is never a message", make([]byte, 100), -1, store.ErrCorrupt},
		{"one zero header is never a message", zeroHdr, -1, store.ErrCorrupt},
		{"empty", nil, 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := store.ValidPrefix(c.data)
			if c.want < 0 {
				if !errors.Is(err, c.wantErr) || got != nil {
					t.Fatalf("ValidPrefix = %d bytes, %v; want error %v", len(got), err, c.wantErr)
				}
				return
			}
			if err != nil || int64(len(got)) != c.want || !bytes.Equal(got, c.data[:c.want]) {
				t.Fatalf("ValidPrefix = %d bytes, %v; want %d bytes", len(got), err, c.want)
			}
		})
	}
}
