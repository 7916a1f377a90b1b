package zkrecipes_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/zkrecipes"
)

func TestCounterConcurrentAddsSumExactly(t *testing.T) {
	const sessions, adds = 5, 40
	ss := coShared(t, sessions)
	root := testRoot(t)
	ctx := coCtx(t, 60*time.Second)
	var wg sync.WaitGroup
	for i, s := range ss {
		c, err := zkrecipes.NewCounter(s, root+"/n", 100)
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range adds {
				if _, err := c.Add(ctx, int64(i+1)); err != nil {
					t.Errorf("add: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	c, _ := zkrecipes.NewCounter(ss[0], root+"/n", 0)
	v, _, err := c.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(100+adds*(1+2+3+4+5)), v)
	data, _, err := ss[0].Get(ctx, root+"/n")
	require.NoError(t, err)
	require.Equal(t, "700", string(data), "stored as decimal text")
	require.NoError(t, c.Delete(ctx))
	coRequireTree(t, ss[0], root)
}

func TestCounterCompareAndSet(t *testing.T) {
	ss := coShared(t, 2)
	root := testRoot(t)
	ctx := coCtx(t, 20*time.Second)
	a, _ := zkrecipes.NewCounter(ss[0], root+"/n", 7)
	b, _ := zkrecipes.NewCounter(ss[1], root+"/n", 7)
	v, ver, err := a.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(7), v)
	newVer, err := b.TrySetCount(ctx, 8, ver)
	require.NoError(t, err)
	require.Equal(t, ver+1, newVer)
	_, err = a.TrySetCount(ctx, 9, ver) // stale
	require.ErrorIs(t, err, zkrecipes.ErrBadVersion)
	v, _, err = a.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(8), v)
	require.NoError(t, a.Set(ctx, -3))
	v, _, err = b.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(-3), v)
}

func TestCounterWaitChange(t *testing.T) {
	ss := coShared(t, 2)
	root := testRoot(t)
	ctx := coCtx(t, 30*time.Second)
	a, _ := zkrecipes.NewCounter(ss[0], root+"/n", 0)
	b, _ := zkrecipes.NewCounter(ss[1], root+"/n", 0)
	_, ver, err := a.Get(ctx)
	require.NoError(t, err)
	type res struct {
		v   int64
		ver int32
		err error
	}
	got := make(chan res, 1)
	go func() {
		v, nv, err := a.WaitChange(ctx, ver)
		got <- res{v, nv, err}
	}()
	coExpire(t, ss[0]) // the watch is re-armed on the new session
	_, err = b.Add(ctx, 5)
	require.NoError(t, err)
	r := <-got
	require.NoError(t, r.err)
	require.Equal(t, int64(5), r.v)
	require.Equal(t, ver+1, r.ver)
}
