package protocol

import (
	"math/bits"
	"slices"
	"strconv"
)

// Decimal formatting of the numbers of request and reply lines, written in
// place (strconv.AppendInt formats into a scratch buffer and copies): a
// broker formats three or four numbers per acknowledged message.

const digitPairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

var pow10 = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// eightDigits reports whether the eight bytes of x (read little-endian, so
// the first character is the lowest byte) are all ASCII digits: every high
// nibble is 3, and adding 6 to each byte (no byte carries into the next)
// leaves it 3, i.e. every low nibble is at most 9.
func eightDigits(x uint64) bool {
	const hi, three, six = 0xF0F0F0F0F0F0F0F0, 0x3030303030303030, 0x0606060606060606
	return x&hi == three && (x+six)&hi == three
}

// eightDigitsValue is the value of the eight ASCII digits in x (as read by
// eightDigits), by SWAR: digit pairs, then pairs of pairs in two multiplies.
func eightDigitsValue(x uint64) uint64 {
	x -= 0x3030303030303030
	x = (x*10 + x>>8) & 0x00FF00FF00FF00FF // each 16-bit lane: 10*first + second of a pair
	return (x&0x000000FF000000FF*(100+1000000<<32) + (x>>16)&0x000000FF000000FF*(1+10000<<32)) >> 32
}

// decLen is the number of decimal digits of u.
func decLen(u uint64) int {
	n := (bits.Len64(u) * 1233) >> 12 // ≈ floor(log10(u)), too small by at most one
	if n < len(pow10) && u >= pow10[n] {
		n++
	}
	return max(n, 1)
}

// decLenInt is the length of v in decimal, with its sign.
func decLenInt(v int64) int {
	if v < 0 {
		return len(strconv.FormatInt(v, 10))
	}
	return decLen(uint64(v))
}

// appendDec appends v in decimal.
func appendDec(dst []byte, v int64) []byte {
	if uint64(v) < 10 { // a partition, a flag: one digit, no length or growth math
		return append(dst, byte('0'+v))
	}
	if v < 0 {
		return strconv.AppendInt(dst, v, 10)
	}
	u := uint64(v)
	l := len(dst)
	n := decLen(u)
	dst = slices.Grow(dst, n)[:l+n]
	i := l + n
	for u >= 100 {
		q := u / 100
		r := (u - q*100) * 2
		i -= 2
		dst[i], dst[i+1] = digitPairs[r], digitPairs[r+1]
		u = q
	}
	if u >= 10 {
		dst[i-2], dst[i-1] = digitPairs[u*2], digitPairs[u*2+1]
	} else {
		dst[i-1] = byte('0' + u)
	}
	return dst
}
