package zkrecipes_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// TestMain runs the whole package against one real ZooKeeper.
func TestMain(m *testing.M) { os.Exit(zktest.Main(m)) }

// connect opens a Session to addrs for one test, with a short session timeout
// by default, and closes it at cleanup.
func connect(tb testing.TB, addrs []string, opts ...zkrecipes.Option) *zkrecipes.Session {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	opts = append([]zkrecipes.Option{zkrecipes.WithSessionTimeout(2 * time.Second)}, opts...)
	s, err := zkrecipes.Connect(ctx, addrs, opts...)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// testRoot returns a fresh, unique base path for one test.
func testRoot(tb testing.TB) string {
	return "/t/" + sanitize(tb.Name()) + "-" + time.Now().Format("150405.000000000")
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '/' || c == ' ' {
			b[i] = '_'
		}
	}
	return string(b)
}

// expire expires s's session for real from a second connection.
func expire(tb testing.TB, addr string, s *zkrecipes.Session) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := zktest.ExpireSession(ctx, addr, zktest.Credentials{SessionID: s.ID(), Password: s.Password()}); err != nil {
		tb.Fatalf("expire: %v", err)
	}
}
