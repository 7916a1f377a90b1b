package store_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker/store"
)

// TestOnSyncRunsOnceTheDataIsVisible: the hook a broker uses to wake parked
// long-poll gets runs after the fsynced data became readable, so a woken
// reader finds it without spinning.
func TestOnSyncRunsOnceTheDataIsVisible(t *testing.T) {
	var p atomic.Pointer[store.Partition]
	var seen atomic.Int64 // End() as the last hook saw it
	opts := store.Options{OnSync: func(_ string, _ int, _ time.Duration, err error) {
		if q := p.Load(); q != nil && err == nil {
			seen.Store(q.End())
		}
	}}
	s := mustOpen(t, t.TempDir(), opts)
	defer s.Close()
	p.Store(mustPart(t, s, "t", 0))
	for i := 0; i < 20; i++ {
		r, err := p.Load().AppendSync(ctxT(t), payload(i), 0)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := seen.Load(), r.Offset+r.Size; got < want {
			t.Fatalf("append %d: the hook saw End %d, the message ends at %d: it ran before the data was visible", i, got, want)
		}
	}
}
