package protocol

import (
	"bytes"
	"testing"
)

func pipelinedPuts(n, size int) []byte {
	payload := bytes.Repeat([]byte("x"), size)
	var buf []byte
	for i := range n {
		r := PutRequest{Topic: "orders", Partition: int32(i % 8), Checksum: Checksum(payload), OpaqueID: int32(i), Data: payload}
		buf = r.AppendTo(buf)
	}
	return buf
}

func benchmarkDecodePuts(b *testing.B, size int) {
	buf := pipelinedPuts(1000, size)
	d := NewDecoder(Config{})
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rest := buf
		for len(rest) > 0 {
			_, n, err := d.Decode(rest)
			if err != nil || n == 0 {
				b.Fatal(err)
			}
			rest = rest[n:]
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/put")
}

func BenchmarkDecodePipelinedPuts100B(b *testing.B) { benchmarkDecodePuts(b, 100) }
func BenchmarkDecodePipelinedPuts4KB(b *testing.B)  { benchmarkDecodePuts(b, 4096) }

func BenchmarkDecodePipelinedGets(b *testing.B) {
	var buf []byte
	for i := range 1000 {
		r := GetRequest{Topic: "orders", Group: "group-1", Partition: 3, Offset: int64(i) * 1000, MaxSize: 1 << 20, OpaqueID: int32(i)}
		buf = r.AppendTo(buf)
	}
	d := NewDecoder(Config{})
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		rest := buf
		for len(rest) > 0 {
			_, n, _ := d.Decode(rest)
			rest = rest[n:]
		}
	}
}

func BenchmarkAppendPut(b *testing.B) {
	payload := bytes.Repeat([]byte("x"), 100)
	r := PutRequest{Topic: "orders", Partition: 3, Checksum: Checksum(payload), OpaqueID: 12345, Data: payload}
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst = r.AppendTo(dst[:0])
	}
	b.SetBytes(int64(len(dst)))
}

func BenchmarkAppendPutResult(b *testing.B) {
	dst := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendPutResult(dst[:0], 123456, 1234567890123456, 3, 987654321)
	}
	b.SetBytes(int64(len(dst)))
}

func BenchmarkAppendValueHeader(b *testing.B) {
	dst := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendValueHeader(dst[:0], 1<<20, 123456)
	}
	b.SetBytes(int64(len(dst)))
}

func BenchmarkDecodeReplies(b *testing.B) {
	var buf []byte
	for i := range 1000 {
		buf = AppendPutResult(buf, int32(i), int64(i)<<22, 3, int64(i)*120)
	}
	d := NewReplyDecoder(Config{})
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		rest := buf
		for len(rest) > 0 {
			_, n, _ := d.Decode(rest)
			rest = rest[n:]
		}
	}
}

func BenchmarkMessageSetIterate(b *testing.B) {
	payload := bytes.Repeat([]byte("m"), 100)
	var set []byte
	for i := range 1000 {
		set = AppendMessage(set, int64(i), 0, payload)
	}
	b.SetBytes(int64(len(set)))
	b.ReportAllocs()
	for b.Loop() {
		it := NewMessageIterator(set)
		for it.Next() {
		}
		if it.Consumed() != len(set) {
			b.Fatal()
		}
	}
}

func BenchmarkParsePutResult(b *testing.B) {
	body := []byte("7166921412931796992 3 123456789")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := ParsePutResult(body); err != nil {
			b.Fatal(err)
		}
	}
}
