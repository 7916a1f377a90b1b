package zkrecipes_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// coExSession connects to the examples' ZooKeeper and returns a unique base path.
func coExSession(ctx context.Context, name string) (*zkrecipes.Session, string) {
	s, err := zkrecipes.Connect(ctx, []string{zktest.SharedAddr()})
	if err != nil {
		panic(err) // examples only
	}
	return s, fmt.Sprintf("/examples/%s-%d", name, time.Now().UnixNano())
}

func ExampleBarrier() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, root := coExSession(ctx, "barrier")
	defer s.Close()

	b, _ := zkrecipes.NewBarrier(s, root+"/start")
	_ = b.Set(ctx)
	released := make(chan struct{})
	go func() {
		_ = b.Wait(ctx) // blocks while the barrier is set
		close(released)
	}()
	fmt.Println("barrier set")
	_ = b.Remove(ctx)
	<-released
	fmt.Println("waiter released")
	// Output:
	// barrier set
	// waiter released
}

func ExampleDoubleBarrier() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, root := coExSession(ctx, "double")
	defer s.Close()

	const workers = 3
	var wg sync.WaitGroup
	var mu sync.Mutex
	var log []string
	for i := range workers {
		db, _ := zkrecipes.NewDoubleBarrier(s, root, workers)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = db.Enter(ctx) // returns when all three have entered
			mu.Lock()
			log = append(log, fmt.Sprintf("worker %d computing", i))
			mu.Unlock()
			_ = db.Leave(ctx) // returns when all three have left
		}()
	}
	wg.Wait()
	sort.Strings(log)
	for _, l := range log {
		fmt.Println(l)
	}
	// Output:
	// worker 0 computing
	// worker 1 computing
	// worker 2 computing
}

func ExampleQueue() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, root := coExSession(ctx, "queue")
	defer s.Close()

	q, _ := zkrecipes.NewQueue(s, root+"/jobs")
	for _, job := range []string{"first", "second", "third"} {
		_, _ = q.Put(ctx, []byte(job))
	}
	n, _ := q.Len(ctx)
	fmt.Println("queued:", n)
	for range n {
		data, _ := q.Take(ctx) // blocks while the queue is empty
		fmt.Println("took:", string(data))
	}
	// Output:
	// queued: 3
	// took: first
	// took: second
	// took: third
}

func ExampleCounter() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, root := coExSession(ctx, "counter")
	defer s.Close()

	c, _ := zkrecipes.NewCounter(s, root+"/hits", 10)
	v, _ := c.Add(ctx, 5)
	fmt.Println("after add:", v)

	_, version, _ := c.Get(ctx)
	_, _ = c.Add(ctx, 1) // someone else writes in between
	_, err := c.TrySetCount(ctx, 100, version)
	fmt.Println("stale compare-and-set rejected:", errors.Is(err, zkrecipes.ErrBadVersion))
	v, _, _ = c.Get(ctx)
	fmt.Println("value:", v)
	// Output:
	// after add: 15
	// stale compare-and-set rejected: true
	// value: 16
}

func ExampleNodeCache() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, root := coExSession(ctx, "nodecache")
	defer s.Close()

	cache, _ := zkrecipes.NewNodeCache(ctx, s, root+"/config")
	defer cache.Close()
	changes := cache.Subscribe() // first event: the current state
	defer changes.Close()
	show := func() {
		if n := <-changes.C; n == nil {
			fmt.Println("config: absent")
		} else {
			fmt.Println("config:", string(n.Data))
		}
	}
	show()
	_, _ = s.CreateParents(ctx, root+"/config", []byte("v1"), zkrecipes.Persistent)
	show()
	_, _ = s.Set(ctx, root+"/config", []byte("v2"), -1)
	show()
	_ = s.Delete(ctx, root+"/config", -1)
	show()
	// Output:
	// config: absent
	// config: v1
	// config: v2
	// config: absent
}

func ExampleChildrenCache() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, root := coExSession(ctx, "childrencache")
	defer s.Close()

	cache, _ := zkrecipes.NewChildrenCache(ctx, s, root+"/services")
	defer cache.Close()
	events := cache.Subscribe()
	defer events.Close()
	show := func() {
		ev := <-events.C
		fmt.Println(ev.Type, ev.Name, string(ev.Data.Data))
	}
	_, _ = s.CreateParents(ctx, root+"/services/web", []byte("10.0.0.1"), zkrecipes.Persistent)
	show()
	_, _ = s.Set(ctx, root+"/services/web", []byte("10.0.0.2"), -1)
	show()
	_ = s.Delete(ctx, root+"/services/web", -1)
	show()
	fmt.Println("children now:", len(cache.Snapshot()))
	// Output:
	// added web 10.0.0.1
	// updated web 10.0.0.2
	// removed web 10.0.0.2
	// children now: 0
}

func ExampleJoinGroup() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, root := coExSession(ctx, "group")
	defer s.Close()

	a, _ := zkrecipes.JoinGroup(ctx, s, root+"/workers", "alpha", []byte("host-a"))
	b, _ := zkrecipes.JoinGroup(ctx, s, root+"/workers", "beta", []byte("host-b"))
	changes := a.Subscribe() // ChildAdded for each current member, then changes
	defer changes.Close()
	seen := map[string]bool{}
	for len(seen) < 2 {
		ev := <-changes.C
		seen[ev.Name] = true
	}
	fmt.Println("members:", len(a.Members()))
	_ = b.Leave(ctx)
	for ev := range changes.C {
		if ev.Type == zkrecipes.ChildRemoved {
			fmt.Println("left:", ev.Name)
			break
		}
	}
	_ = a.Leave(ctx)
	// Output:
	// members: 2
	// left: beta
}
