package zkrecipes_test

import (
	"context"
	"errors"
	"path"
	"sort"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// coCtx returns a context that ends after d or at the end of the test.
func coCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// coShared connects n sessions to the shared server.
func coShared(t *testing.T, n int, opts ...zkrecipes.Option) []*zkrecipes.Session {
	t.Helper()
	addr := zktest.Shared(t).Addr
	out := make([]*zkrecipes.Session, n)
	for i := range out {
		out[i] = connect(t, []string{addr}, opts...)
	}
	return out
}

// coTree lists every node under p (paths relative to p), sorted; nil if p does not exist.
func coTree(t *testing.T, s *zkrecipes.Session, p string) []string {
	t.Helper()
	ctx := coCtx(t, 10*time.Second)
	var out []string
	var walk func(rel string)
	walk = func(rel string) {
		kids, _, err := s.Children(ctx, path.Join(p, rel))
		if errors.Is(err, zk.ErrNoNode) {
			return
		}
		require.NoError(t, err)
		for _, k := range kids {
			out = append(out, path.Join(rel, k))
			walk(path.Join(rel, k))
		}
	}
	walk("")
	sort.Strings(out)
	return out
}

// coRequireTree waits until the tree under p is exactly want.
func coRequireTree(t *testing.T, s *zkrecipes.Session, p string, want ...string) {
	t.Helper()
	sort.Strings(want)
	var got []string
	require.Eventually(t, func() bool {
		got = coTree(t, s, p)
		return len(got) == len(want) && (len(want) == 0 || equalStrings(got, want))
	}, 10*time.Second, 20*time.Millisecond, "tree under %s: got %v want %v", p, &got, want)
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// coExpire expires s's session for real and waits for s to have a new one.
func coExpire(t *testing.T, s *zkrecipes.Session) {
	t.Helper()
	old := s.ID()
	require.NotZero(t, old)
	expire(t, zktest.Shared(t).Addr, s)
	require.Eventually(t, func() bool { id := s.ID(); return id != 0 && id != old }, 15*time.Second, 10*time.Millisecond,
		"no new session after expiry")
}
