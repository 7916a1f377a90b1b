package conn

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/protocol"
)

type tagHandler int

func (tagHandler) HandleReply(*protocol.Reply, error) {}

// A request outstanding while the opaques wrap around the table keeps its
// opaque: no later request gets it, and its reply still finds its handler.
func TestPendingTableSkipsOpaquesStillOutstanding(t *testing.T) {
	pt := newPendingTable()
	long := pt.alloc(tagHandler(-1))
	for i := 0; i < 10*minPendingSlots; i++ {
		op := pt.alloc(tagHandler(i))
		require.NotEqual(t, long, op)
		mask := int32(len(pt.slots) - 1)
		require.NotEqual(t, long&mask, op&mask, "the outstanding request's slot was reused")
		h, ok := pt.take(op)
		require.True(t, ok)
		require.Equal(t, tagHandler(i), h)
	}
	h, ok := pt.take(long)
	require.True(t, ok)
	require.Equal(t, tagHandler(-1), h)
	require.Equal(t, 0, pt.len())
	_, ok = pt.take(long)
	require.False(t, ok, "a reply is handled once")
}

// Many requests in flight grow the table; every handler is found once, a
// request sent without a handler takes no slot, and NoOpaque is never used.
func TestPendingTableGrowsAndWraps(t *testing.T) {
	pt := newPendingTable()
	pt.next = math.MaxInt32 - 100
	ops := map[int32]int{}
	for i := 0; i < 1000; i++ {
		op := pt.alloc(tagHandler(i))
		require.NotEqual(t, protocol.NoOpaque, op)
		_, dup := ops[op]
		require.False(t, dup)
		ops[op] = i
		if i%3 == 0 {
			pt.alloc(nil) // a request without a reply
		}
	}
	require.Equal(t, 1000, pt.len())
	require.GreaterOrEqual(t, len(pt.slots), 2000)
	for op, i := range ops {
		h, ok := pt.take(op)
		require.True(t, ok)
		require.Equal(t, tagHandler(i), h)
	}
	require.Equal(t, 0, pt.len())
	pt.alloc(tagHandler(1))
	pt.alloc(tagHandler(2))
	require.Len(t, pt.drain(), 2)
	require.Equal(t, 0, pt.len())
}
