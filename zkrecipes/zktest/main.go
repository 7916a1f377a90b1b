package zktest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

var (
	sharedMu sync.Mutex // guards shared
	shared   *Server
)

// Main starts one standalone ZooKeeper for a test package, runs the tests and
// stops the server. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(zktest.Main(m)) }
//
// If ZooKeeper cannot be started, Main prints why and returns 1 so that CI
// fails instead of silently skipping.
func Main(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	srv, err := StartServer(ctx, Options{})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "zktest: cannot start ZooKeeper, failing the package: %v\n", err)
		return 1
	}
	sharedMu.Lock()
	shared = srv
	sharedMu.Unlock()
	code := m.Run()
	srv.Stop()
	return code
}

// Shared returns the server that Main started for this test package.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil {
		tb.Fatal("zktest: no shared server: call os.Exit(zktest.Main(m)) from TestMain")
	}
	return shared
}

// StartEnsembleT starts an n-server ensemble for one test and stops it at cleanup.
func StartEnsembleT(tb testing.TB, n int, o Options) *Ensemble {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	e, err := StartEnsemble(ctx, n, o)
	if err != nil {
		tb.Fatalf("zktest: %v", err)
	}
	tb.Cleanup(e.Stop)
	return e
}

// StartServerT starts a private standalone server for one test and stops it at cleanup.
func StartServerT(tb testing.TB, o Options) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s, err := StartServer(ctx, o)
	if err != nil {
		tb.Fatalf("zktest: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// NewProxyT starts a fault proxy to target for one test.
func NewProxyT(tb testing.TB, target string) *Proxy {
	tb.Helper()
	p, err := NewProxy(target)
	if err != nil {
		tb.Fatalf("zktest: proxy: %v", err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// SharedAddr returns the address of the server Main started, or "" if none
// (for runnable examples, which have no testing.TB).
func SharedAddr() string {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil {
		return ""
	}
	return shared.Addr
}
