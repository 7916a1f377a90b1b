package zkrecipes_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/zkrecipes"
)

func TestQueueEveryItemTakenExactlyOnce(t *testing.T) {
	const producers, consumers, items = 4, 4, 400
	ss := coShared(t, producers+consumers)
	root := testRoot(t)
	ctx := coCtx(t, 60*time.Second)
	var taken sync.Map
	var dup, count int
	var mu sync.Mutex
	takeCtx, stopTakers := context.WithCancel(ctx)
	defer stopTakers()
	var cwg sync.WaitGroup
	for i := range consumers {
		q, err := zkrecipes.NewQueue(ss[producers+i], root+"/q")
		require.NoError(t, err)
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for {
				data, err := q.Take(takeCtx)
				if err != nil {
					return
				}
				if _, loaded := taken.LoadOrStore(string(data), true); loaded {
					mu.Lock()
					dup++
					mu.Unlock()
				}
				mu.Lock()
				count++
				mu.Unlock()
			}
		}()
	}
	var pwg sync.WaitGroup
	for p := range producers {
		q, err := zkrecipes.NewQueue(ss[p], root+"/q")
		require.NoError(t, err)
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for i := range items / producers {
				if _, err := q.Put(ctx, fmt.Appendf(nil, "p%d-%d", p, i)); err != nil {
					t.Errorf("put: %v", err)
					return
				}
			}
		}()
	}
	pwg.Wait()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return count >= items }, 30*time.Second, 10*time.Millisecond)
	stopTakers()
	cwg.Wait()
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, items, count)
	require.Zero(t, dup)
	for p := range producers {
		for i := range items / producers {
			_, ok := taken.Load(fmt.Sprintf("p%d-%d", p, i))
			require.True(t, ok, "item p%d-%d never taken", p, i)
		}
	}
	coRequireTree(t, ss[0], root+"/q")
}

func TestQueueFIFOPeekLen(t *testing.T) {
	ss := coShared(t, 1)
	root := testRoot(t)
	ctx := coCtx(t, 20*time.Second)
	q, err := zkrecipes.NewQueue(ss[0], root+"/q")
	require.NoError(t, err)
	n, err := q.Len(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = q.Peek(ctx)
	require.ErrorIs(t, err, zkrecipes.ErrQueueEmpty)
	for _, s := range []string{"a", "b", "c"} {
		_, err := q.Put(ctx, []byte(s))
		require.NoError(t, err)
	}
	n, err = q.Len(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	head, err := q.Peek(ctx)
	require.NoError(t, err)
	require.Equal(t, "a", string(head))
	for _, want := range []string{"a", "b", "c"} {
		got, err := q.Take(ctx)
		require.NoError(t, err)
		require.Equal(t, want, string(got))
	}
	// Take blocks on an empty queue until ctx ends...
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = q.Take(short)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	// ...and wakes up for a later Put.
	got := make(chan string, 1)
	go func() {
		data, err := q.Take(ctx)
		if err == nil {
			got <- string(data)
		}
		close(got)
	}()
	_, err = q.Put(ctx, []byte("d"))
	require.NoError(t, err)
	require.Equal(t, "d", <-got)
	coRequireTree(t, ss[0], root+"/q")
}

func TestQueueTakeOnMissingQueueWaitsForCreation(t *testing.T) {
	ss := coShared(t, 2)
	root := testRoot(t)
	ctx := coCtx(t, 20*time.Second)
	q0, _ := zkrecipes.NewQueue(ss[0], root+"/q")
	q1, _ := zkrecipes.NewQueue(ss[1], root+"/q")
	got := make(chan string, 1)
	go func() {
		data, err := q0.Take(ctx)
		if err == nil {
			got <- string(data)
		}
		close(got)
	}()
	_, err := q1.Put(ctx, []byte("x"))
	require.NoError(t, err)
	require.Equal(t, "x", <-got)
}
