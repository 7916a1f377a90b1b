package faulttest

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

const replSessionTimeout = 4 * time.Second

// member is the configuration of member id of replica set brokerId 1
// (member 0 = the configured master).
func member(zkAddr, root string, id int) config {
	repl := []string{"serveReads=true", "slaveMaxDelayInMills=10000", "minSyncSlaves=1"}
	if id > 0 {
		repl = append(repl, fmt.Sprintf("slaveId=%d", id), "mode=sync")
	}
	return config{zk: []string{"zk.zkEnable=true", "zk.zkConnect=" + zkAddr, "zk.zkRoot=" + root,
		fmt.Sprintf("zk.zkSessionTimeoutMs=%d", replSessionTimeout.Milliseconds())}, replication: repl}
}

// replStats returns the `stats replication` lines of a broker as "key value".
func replStats(addr string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := conn.Dial(ctx, addr, conn.Options{})
	if err != nil {
		return nil
	}
	defer c.Close()
	lines, err := c.Stats(ctx, "replication")
	if err != nil {
		return nil
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Key + " " + l.Value
	}
	return out
}

func hasLine(addr, prefix string) bool {
	for _, l := range replStats(addr) {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// partitionEnds sums the `partition` ends of `stats replication`.
func partitionEnds(addr string) (int64, bool) {
	var sum int64
	ok := false
	for _, l := range replStats(addr) {
		var name string
		var end int64
		if _, err := fmt.Sscanf(l, "partition %s %d", &name, &end); err == nil {
			sum += end
			ok = true
		}
	}
	return sum, ok
}

// kill -9 of the master with a sync slave: the slave is promoted within the
// session timeout + 2 s, holds every acknowledged message at the offset its
// put reply gave, and the old master restarted on its old data rejoins as a
// follower after truncating the tail nobody acknowledged.
func TestReplicationMasterKill9(t *testing.T) {
	zk := zktest.StartServerT(t, zktest.Options{})
	root := fmt.Sprintf("/metaq-repl-%d", time.Now().UnixNano())
	m := startBroker(t, member(zk.Addr, root, 0))
	s := startBroker(t, member(zk.Addr, root, 1))
	eventually(t, 60*time.Second, func() (bool, string) {
		return hasLine(m.addr, "slave 1 mode sync in_sync true"), fmt.Sprintf("slave 1 in sync on the master: %q", replStats(m.addr))
	})

	l := newLedger()
	load(t, m.addr, "before", 3, []int32{0, 1, 2, 3}, l, 300, func() {})

	// Freeze the slave so that puts reach the master's disk but not its
	// acknowledgement: the master then holds a tail nobody acknowledged.
	s.signal(syscall.SIGSTOP)
	c := dial(t, m.addr)
	// Round 0 answers the follower's parked long-poll gets (those bytes may
	// still reach the frozen slave's socket); round 1 then has no get to
	// answer: it stays on the master only.
	for round := 0; round < 2; round++ {
		before, _ := partitionEnds(m.addr)
		for i := 0; i < 8; i++ {
			payload := fmt.Sprintf("unacked-%d-%d", round, i)
			l.send(payload, int32(i%parts))
			require.NoError(t, c.Start(conn.ProtocolRequest(putReq(int32(i%parts), payload)), handlerFunc(func(*protocol.Reply, error) {})))
		}
		eventually(t, 10*time.Second, func() (bool, string) {
			e, _ := partitionEnds(m.addr)
			return e >= before+8*(20+int64(len("unacked-0-0"))), "the unacknowledged puts on the master's disk"
		})
	}
	tailEnd, _ := partitionEnds(m.addr)
	m.kill9()
	killed := time.Now()
	s.signal(syscall.SIGCONT)

	eventually(t, 60*time.Second, func() (bool, string) {
		return hasLine(s.addr, "role master"), fmt.Sprintf("slave promoted: %q", replStats(s.addr))
	})
	promotion := time.Since(killed)
	t.Logf("promotion took %v (session timeout %v)", promotion, replSessionTimeout)
	require.LessOrEqual(t, promotion, replSessionTimeout+2*time.Second, "promotion after the master's kill -9")
	l.audit(t, readAll(t, s.addr, false), auditOpts{})

	promotedEnd, _ := partitionEnds(s.addr)
	require.Less(t, promotedEnd, tailEnd, "the new master must not have the unacknowledged tail")
	m2 := m.restart()
	eventually(t, 60*time.Second, func() (bool, string) {
		return hasLine(s.addr, "slave 0 mode sync in_sync true"), fmt.Sprintf("old master back in sync: %q", replStats(s.addr))
	})
	e2, _ := partitionEnds(m2.addr)
	e1, _ := partitionEnds(s.addr)
	require.Equal(t, e1, e2, "the old master truncated its tail and copied the new master's log")
	require.True(t, hasLine(m2.addr, "role follower"), "%q", replStats(m2.addr))

	nc := dial(t, s.addr)
	putSync(t, nc, l, 0, "after-failover")
	l.audit(t, readAll(t, s.addr, false), auditOpts{})
	eventually(t, 30*time.Second, func() (bool, string) {
		a, _ := partitionEnds(s.addr)
		b, _ := partitionEnds(m2.addr)
		return a == b, "old master caught up"
	})
	l.audit(t, readAll(t, m2.addr, false), auditOpts{})
}
