package coordinator_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

func TestMain(m *testing.M) { os.Exit(zktest.Main(m)) }

func connect(tb testing.TB, addr string) *zkrecipes.Session {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := zkrecipes.Connect(ctx, []string{addr}, zkrecipes.WithSessionTimeout(2*time.Second))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

func uniqueRoot(tb testing.TB) string {
	return "/t" + time.Now().Format("150405.000000000") + "/meta"
}
