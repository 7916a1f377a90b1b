package protocol

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAppendDecMatchesStrconv: the in-place formatter writes what
// strconv.AppendInt does, at every digit count and sign, after any prefix.
func TestAppendDecMatchesStrconv(t *testing.T) {
	vals := []int64{0, 1, 9, 10, 99, 100, 101, 999, 1000, math.MaxInt64, math.MinInt64, -1, -10, -99}
	for _, p := range pow10 {
		if p <= math.MaxInt64 {
			vals = append(vals, int64(p), int64(p)-1, int64(p)+1)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		vals = append(vals, r.Int64()>>r.IntN(63), -r.Int64()>>r.IntN(63))
	}
	for _, v := range vals {
		want := strconv.AppendInt([]byte("x "), v, 10)
		require.Equal(t, string(want), string(appendDec([]byte("x "), v)), "value %d", v)
		require.Equal(t, len(want)-2, decLenInt(v), "length of %d", v)
	}
}

// TestAppendPutResultMatchesItsParts: the put reply's body length and body
// agree with the numbers it carries, for every digit count.
func TestAppendPutResultMatchesItsParts(t *testing.T) {
	for _, c := range []struct {
		id   int64
		part int32
		off  int64
	}{{0, 0, 0}, {math.MaxInt64, math.MaxInt32, math.MaxInt64}, {-5, 7, -1}, {1 << 40, 999, 1e12}} {
		body := strconv.FormatInt(c.id, 10) + " " + strconv.Itoa(int(c.part)) + " " + strconv.FormatInt(c.off, 10)
		want := "result 200 " + strconv.Itoa(len(body)) + " 42\r\n" + body
		require.Equal(t, want, string(AppendPutResult(nil, 42, c.id, c.part, c.off)))
	}
}
