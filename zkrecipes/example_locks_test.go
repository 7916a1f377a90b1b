package zkrecipes_test

import (
	"context"
	"fmt"
	"time"

	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// lkExampleSession connects to the test ZooKeeper and returns a fresh base path.
func lkExampleSession(ctx context.Context, name string) (*zkrecipes.Session, string, error) {
	s, err := zkrecipes.Connect(ctx, []string{zktest.SharedAddr()})
	return s, "/examples/" + name + "-" + time.Now().Format("150405.000000000"), err
}

func ExampleMutex() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, root, err := lkExampleSession(ctx, "mutex")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	m, err := zkrecipes.NewMutex(s, root+"/lock")
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := m.Lock(ctx); err != nil {
		fmt.Println(err)
		return
	}
	select {
	case <-m.Lost(): // closed if the session ends while we hold the lock
		fmt.Println("lost the lock")
	default:
		fmt.Println("holding the lock:", m.Held())
	}
	if err := m.Unlock(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("held after unlock:", m.Held())
	// Output:
	// holding the lock: true
	// held after unlock: false
}

func ExampleRWLock() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, root, err := lkExampleSession(ctx, "rwlock")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	// Two participants (normally in different processes) share the read side.
	a, _ := zkrecipes.NewRWLock(s, root+"/rw")
	b, _ := zkrecipes.NewRWLock(s, root+"/rw")
	_ = a.ReadLock().Lock(ctx)
	_ = b.ReadLock().Lock(ctx)
	fmt.Println("both read:", a.ReadLock().Held() && b.ReadLock().Held())

	w, _ := zkrecipes.NewRWLock(s, root+"/rw")
	ok, _ := w.WriteLock().TryLock(ctx)
	fmt.Println("writer while reading:", ok)

	_ = a.ReadLock().Unlock(ctx)
	_ = b.ReadLock().Unlock(ctx)
	_ = w.WriteLock().Lock(ctx)
	fmt.Println("writer after readers:", w.WriteLock().Held())
	_ = w.WriteLock().Unlock(ctx)
	// Output:
	// both read: true
	// writer while reading: false
	// writer after readers: true
}

func ExampleSemaphore() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, root, err := lkExampleSession(ctx, "semaphore")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	sem, err := zkrecipes.NewSemaphore(s, root+"/sem", 2)
	if err != nil {
		fmt.Println(err)
		return
	}
	l1, _ := sem.Acquire(ctx)
	l2, _ := sem.Acquire(ctx)
	fmt.Println("two leases held")

	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = sem.Acquire(short) // a third must wait: give up after 300ms
	cancelShort()
	fmt.Println("third lease:", err != nil)

	_ = l1.Release(ctx)
	l3, err := sem.Acquire(ctx)
	fmt.Println("after a release:", err == nil)
	_ = l2.Release(ctx)
	_ = l3.Release(ctx)
	// Output:
	// two leases held
	// third lease: true
	// after a release: true
}

func ExampleLeaderLatch() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, root, err := lkExampleSession(ctx, "latch")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	first, _ := zkrecipes.NewLeaderLatch(s, root+"/latch", "node-1")
	second, _ := zkrecipes.NewLeaderLatch(s, root+"/latch", "node-2")
	_ = first.Start(ctx)
	_ = second.Start(ctx)
	if err := first.AwaitLeadership(ctx); err != nil {
		fmt.Println(err)
		return
	}
	ids, _ := first.Participants(ctx)
	fmt.Println("participants:", ids, "leader:", first.IsLeader())

	term := first.Leadership() // closed when this leadership ends
	_ = first.Close(ctx)
	<-term
	_ = second.AwaitLeadership(ctx)
	fmt.Println("new leader is node-2:", second.IsLeader())
	_ = second.Close(ctx)
	// Output:
	// participants: [node-1 node-2] leader: true
	// new leader is node-2: true
}

func ExampleEphemeralNode() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, root, err := lkExampleSession(ctx, "ephemeral")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	n, err := zkrecipes.NewEphemeralNode(s, root+"/members/worker-1", []byte("host-a:8123"))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := n.Start(ctx); err != nil { // re-created after expiry or deletion until Close
		fmt.Println(err)
		return
	}
	data, _, _ := s.Get(ctx, n.Path())
	fmt.Println(string(data))
	_ = n.SetData(ctx, []byte("host-a:9000"))
	data, _, _ = s.Get(ctx, n.Path())
	fmt.Println(string(data))
	_ = n.Close(ctx)
	ok, _, _ := s.Exists(ctx, n.Path())
	fmt.Println("exists after close:", ok)
	// Output:
	// host-a:8123
	// host-a:9000
	// exists after close: false
}
