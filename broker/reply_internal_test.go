package broker

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/panjf2000/gnet/v2"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/store"
)

// wakeCounter is a gnet.Conn that only counts Wake calls (the rest is nil:
// replyDurable and takeReplies use nothing else).
type wakeCounter struct {
	gnet.Conn
	wakes atomic.Int64
}

func (w *wakeCounter) Wake(gnet.AsyncCallback) error { w.wakes.Add(1); return nil }

// TestDurableRepliesOfOneCycleLeaveInOneWrite: replies queued by many
// partition writers at once wake the loop once and are all taken by its next
// turn, each exactly once and each writer's in its order; a reply queued
// after the loop took them wakes it again (none is left waiting for traffic).
func TestDurableRepliesOfOneCycleLeaveInOneWrite(t *testing.T) {
	gc := &wakeCounter{}
	cn := &conn{gc: gc}
	const writers, per = 50, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				cn.replyDurable(fmt.Appendf(nil, "w%d-%d\n", w, i))
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 1, gc.wakes.Load(), "one wake for every reply queued before the loop's turn")

	cn.out = append(cn.out, "loop\n"...) // a reply built on the loop in the same turn
	cn.takeReplies()
	lines := bytes.Split(bytes.TrimSuffix(cn.out, []byte("\n")), []byte("\n"))
	require.Len(t, lines, writers*per+1)
	require.Equal(t, "loop", string(lines[0]))
	next := make([]int, writers)
	for _, l := range lines[1:] {
		var w, i int
		_, err := fmt.Sscanf(string(l), "w%d-%d", &w, &i)
		require.NoError(t, err, string(l))
		require.Equal(t, next[w], i, "writer %d's replies out of order or repeated", w)
		next[w]++
	}

	cn.out = cn.out[:0]
	cn.takeReplies()
	require.Empty(t, cn.out, "replies are taken once")
	cn.replyDurable([]byte("late\n"))
	require.EqualValues(t, 2, gc.wakes.Load(), "a reply after the loop's turn wakes it again")
	cn.takeReplies()
	require.Equal(t, "late\n", string(cn.out))

	cn.closed.Store(true)
	cn.replyDurable([]byte("closed\n"))
	require.EqualValues(t, 2, gc.wakes.Load(), "nothing is queued for a closed connection")
}

// TestBatchForIndexesByPartition: the puts of one read to many partitions
// get one batch per partition, in first-seen order, the same batch on every
// return to a partition; flushing empties the index (no stale batch for the
// next read).
func TestBatchForIndexesByPartition(t *testing.T) {
	cn := &conn{}
	parts := make([]*store.Partition, 300)
	for i := range parts {
		parts[i] = new(store.Partition) // identity only
	}
	for round := range 3 {
		for i, p := range parts {
			for range 2 { // consecutive puts to one partition
				pb := cn.batchFor(p, "t", int32(i))
				pb.opaques = append(pb.opaques, int32(round))
			}
		}
	}
	require.Len(t, cn.puts, len(parts))
	for i, pb := range cn.puts {
		require.Same(t, parts[i], pb.p)
		require.Equal(t, []int32{0, 0, 1, 1, 2, 2}, pb.opaques)
	}
	require.Len(t, cn.putIdx, len(parts))
	for i := range cn.puts { // as flushPuts does
		pb := cn.takePut(i)
		pb.reset()
		batchPool.Put(pb)
	}
	cn.puts = cn.puts[:0]
	require.Empty(t, cn.putIdx)
	a, b := cn.batchFor(parts[0], "t", 0), cn.batchFor(parts[1], "t", 1)
	require.NotSame(t, a, b)
	require.Same(t, a, cn.batchFor(parts[0], "t", 0))
	require.Len(t, cn.puts, 2)
}
