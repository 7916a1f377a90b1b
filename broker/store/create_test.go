package store_test

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker/store"
)

// gatedMkdirFS blocks MkdirAll of a directory whose name contains match
// until gate is closed, and says so on entered.
type gatedMkdirFS struct {
	store.FS
	match   string
	entered chan struct{}
	gate    chan struct{}
}

func (f *gatedMkdirFS) MkdirAll(name string, perm os.FileMode) error {
	if strings.Contains(name, f.match) {
		f.entered <- struct{}{}
		<-f.gate
	}
	return f.FS.MkdirAll(name, perm)
}

// TestPartitionCreationDoesNotBlockLookups: while one partition's directory
// is being created (file I/O, possibly slow), lookups of other partitions
// are answered, and a second creator of the same partition waits for the
// first and gets the same partition.
func TestPartitionCreationDoesNotBlockLookups(t *testing.T) {
	fs := &gatedMkdirFS{FS: store.OSFS{}, match: "fresh-0", entered: make(chan struct{}, 2), gate: make(chan struct{})}
	s := mustOpen(t, t.TempDir(), store.Options{FS: fs})
	defer s.Close()
	old := mustPart(t, s, "old", 0)
	var once sync.Once
	release := func() { once.Do(func() { close(fs.gate) }) }
	defer release()

	got := make(chan *store.Partition, 2)
	create := func() {
		p, err := s.Partition("fresh", 0, true)
		if err != nil {
			t.Errorf("create: %v", err)
		}
		got <- p
	}
	go create()
	select {
	case <-fs.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the partition directory was never created")
	}
	go create() // must wait for the first, not create again
	looked := make(chan *store.Partition, 1)
	go func() {
		p, _ := s.Partition("old", 0, false)
		looked <- p
	}()
	select {
	case p := <-looked:
		if p != old {
			t.Fatalf("lookup returned %p, want %p", p, old)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a lookup of another partition waited for the creation's file I/O")
	}
	release()
	p1, p2 := <-got, <-got
	if p1 == nil || p1 != p2 {
		t.Fatalf("two creators got %p and %p, want the same partition", p1, p2)
	}
	select {
	case <-fs.entered:
		t.Fatal("the partition directory was created twice")
	default:
	}
}
