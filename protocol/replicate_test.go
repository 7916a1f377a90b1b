package protocol

import (
	"testing"
)

func TestDecodeReplicate(t *testing.T) {
	d := NewDecoder(Config{})
	req, n, err := d.Decode([]byte("replicate 3 2 sync 17 9\r\n"))
	if err != nil || n != 25 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	want := ReplicateRequest{BrokerID: 3, MemberID: 2, Sync: true, Epoch: 17, OpaqueID: 9}
	if got := *req.(*ReplicateRequest); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if w := string(want.AppendTo(nil)); w != "replicate 3 2 sync 17 9\r\n" {
		t.Fatalf("encoded %q", w)
	}
	async := ReplicateRequest{BrokerID: 1, Epoch: 0, OpaqueID: 1}
	checkRoundTrip(t, Config{}, &async)
	for _, bad := range []string{
		"replicate 3 2 semi 17 9\r\n",
		"replicate 3 2 sync -1 9\r\n",
		"replicate 3 -2 sync 1 9\r\n",
		"replicate 5000 2 sync 1 9\r\n",
		"replicate 3 2 sync 1\r\n",
		"replicate 3 2 sync x 9\r\n",
	} {
		_, _, err := NewDecoder(Config{}).Decode([]byte(bad))
		e, ok := err.(*Error)
		if !ok || e.Verb != VerbReplicate {
			t.Fatalf("%q: err %v", bad, err)
		}
	}
}
