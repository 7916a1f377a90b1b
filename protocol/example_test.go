package protocol_test

import (
	"fmt"

	"github.com/metaq-go/metaq/protocol"
)

// A client encodes a put with its checksum; the broker decodes it and replies;
// the client decodes the reply.
func Example() {
	data := protocol.AppendPutData(nil, protocol.FlagAttribute, "tag", []byte("hello"))
	put := protocol.PutRequest{Topic: "orders", Partition: 0, Flag: protocol.FlagAttribute,
		Checksum: protocol.Checksum(data), OpaqueID: 7, Data: data}
	wire := put.AppendTo(nil)
	fmt.Printf("%q\n", wire[:len(wire)-len(data)])

	// Broker side.
	dec := protocol.NewDecoder(protocol.Config{})
	req, n, err := dec.Decode(wire)
	if err != nil {
		panic(err)
	}
	p := req.(*protocol.PutRequest)
	attr, payload, _ := protocol.ParsePutData(p.Flag, p.Data)
	fmt.Println(n == len(wire), p.Topic, string(attr), string(payload), p.Checksum == protocol.Checksum(p.Data))
	reply := protocol.AppendPutResult(nil, req.Opaque(), 4711, p.Partition, 1024)
	fmt.Printf("%q\n", reply)

	// Client side.
	rdec := protocol.NewReplyDecoder(protocol.Config{})
	r, _, err := rdec.Decode(reply)
	if err != nil {
		panic(err)
	}
	id, part, off, _ := protocol.ParsePutResult(r.Body)
	fmt.Println(r.Code, r.Opaque, id, part, off)
	// Output:
	// "put orders 0 12 1 574639336 7\r\n"
	// true orders tag hello true
	// "result 200 11 7\r\n4711 0 1024"
	// 200 7 4711 0 1024
}
