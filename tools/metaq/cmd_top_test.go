package main

import (
	"strings"
	"testing"

	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// TestTopOncePrintsTheClusterWithoutATerminal: `metaq top --once` (and top
// with a stdout that is not a terminal) prints one plain-text view: the
// brokers, the topics and the groups, the one with the most lag first.
func TestTopOncePrintsTheClusterWithoutATerminal(t *testing.T) {
	zkAddr := zktest.Shared(t).Addr
	root := opsZKRoot(t)
	zk := []string{"--zk", zkAddr, "--zk-root", root}
	b := opsStartBroker(t, 4, zkAddr, root, 2, "clicks", "views")
	opsPut(t, b.Addr(), "clicks", 0, 6, "c")
	opsPut(t, b.Addr(), "views", 1, 2, "v")
	mustMetaq(t, append([]string{"consume", "--group", "slow", "--topic", "clicks", "--max", "1"}, zk...)...)
	mustMetaq(t, append([]string{"consume", "--group", "fast", "--topic", "views", "--max", "2"}, zk...)...)

	for _, args := range [][]string{{"top", "--once", "--interval", "100ms"}, {"top", "--interval", "100ms"}} {
		out := mustMetaq(t, append(args, zk...)...)
		for _, want := range []string{"metaq top", "BROKER", b.URI(), "up", "clicks", "views", "GROUP (slowest first)"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output lacks %q:\n%s", args, want, out)
			}
		}
		slow, fast := strings.Index(out, "\nslow "), strings.Index(out, "\nfast ")
		if slow < 0 || fast < 0 || slow > fast {
			t.Errorf("%v: want group slow (lag) listed before fast (none):\n%s", args, out)
		}
	}
}
