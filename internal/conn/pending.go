package conn

import (
	"math"

	"github.com/metaq-go/metaq/protocol"
)

// pendingTable holds the Handler of every request awaiting a reply, indexed
// by opaque. Opaques are handed out in sequence, so slot op&mask is free for
// almost every new one; an opaque whose slot is still taken (a request
// outstanding for long, e.g. a long-poll get) is skipped, which also keeps
// opaques unique after they wrap around. The table doubles when half full.
// Compared with a map, a put costs no hashing and no map growth, and a
// reply's lookup and removal is one indexed load and store (issue 16: the
// producer's per-message cost). Guarded by Conn.mu.
type pendingTable struct {
	slots []pendingSlot // len is a power of two
	n     int           // slots in use
	next  int32         // next opaque to try
}

type pendingSlot struct {
	op   int32
	used bool
	h    Handler
}

const minPendingSlots = 64

func newPendingTable() pendingTable {
	return pendingTable{slots: make([]pendingSlot, minPendingSlots), next: 1}
}

func (t *pendingTable) len() int { return t.n }

// alloc returns a fresh opaque; with h non-nil it is registered for it.
func (t *pendingTable) alloc(h Handler) int32 {
	if h != nil && 2*(t.n+1) > len(t.slots) {
		t.grow()
	}
	mask := int32(len(t.slots) - 1)
	for {
		op := t.next
		if t.next == math.MaxInt32-1 {
			t.next = math.MinInt32
		} else {
			t.next++
		}
		if op == protocol.NoOpaque {
			continue // brokers use it for requests sent without one
		}
		s := &t.slots[op&mask]
		if s.used {
			continue // taken by an older request still outstanding
		}
		if h != nil {
			*s = pendingSlot{op: op, used: true, h: h}
			t.n++
		}
		return op
	}
}

// take removes and returns the handler registered for op.
func (t *pendingTable) take(op int32) (Handler, bool) {
	s := &t.slots[op&int32(len(t.slots)-1)]
	if !s.used || s.op != op {
		return nil, false
	}
	h := s.h
	*s = pendingSlot{}
	t.n--
	return h, true
}

// grow doubles the table. Two opaques in use never share a slot of the
// larger table: their low bits differed already under the smaller mask.
func (t *pendingTable) grow() {
	slots := make([]pendingSlot, 2*len(t.slots))
	mask := int32(len(slots) - 1)
	for _, s := range t.slots {
		if s.used {
			slots[s.op&mask] = s
		}
	}
	t.slots = slots
}

// drain removes every handler and returns them in slot order.
func (t *pendingTable) drain() []Handler {
	hs := make([]Handler, 0, t.n)
	for i := range t.slots {
		if t.slots[i].used {
			hs = append(hs, t.slots[i].h)
		}
	}
	*t = newPendingTable()
	return hs
}
