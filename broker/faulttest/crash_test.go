package faulttest

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var allParts = []int32{0, 1, 2, 3}

// TestBinaryKill9DuringPipelinedProduce: kill -9 while three producers
// pipeline puts over every partition (group commit), restart, and read
// everything back: every acknowledged put at its offset, nothing invented,
// each producer's order kept; the restarted broker takes new puts.
func TestBinaryKill9DuringPipelinedProduce(t *testing.T) {
	t.Parallel()
	b := startBroker(t, config{})
	l := newLedger()
	load(t, b.addr, "k9", 3, allParts, l, 600, func() { b.kill9() })
	b = b.restart()
	l.audit(t, readAll(t, b.addr, false), auditOpts{})

	c := dial(t, b.addr)
	for p := int32(0); p < parts; p++ {
		putSync(t, c, l, p, fmt.Sprintf("after-p%d-0", p))
	}
	l.audit(t, readAll(t, b.addr, false), auditOpts{})
	b.requireAlive("restart after kill -9")
}

// TestBinaryKill9GarbageTail: after kill -9, 4,096 zero bytes are appended
// to the active segment of partition 0 (a delayed-allocation tail) and random
// bytes to that of partition 1; the restarted broker must serve exactly the
// acknowledged messages, with no empty "phantom" messages from the zeros.
func TestBinaryKill9GarbageTail(t *testing.T) {
	t.Parallel()
	b := startBroker(t, config{})
	l := newLedger()
	c := dial(t, b.addr)
	for p := int32(0); p < parts; p++ {
		for i := 0; i < 3; i++ {
			putSync(t, c, l, p, fmt.Sprintf("tail-p%d-%d-x", p, i))
		}
	}
	_ = c.Close()
	b.kill9()

	segs0, segs1 := segments(t, b.partDir(0)), segments(t, b.partDir(1))
	require.NotEmpty(t, segs0)
	require.NotEmpty(t, segs1)
	appendFile(t, segs0[len(segs0)-1].path, make([]byte, 4096))
	garbage := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range garbage {
		garbage[i] = byte(rng.UintN(256))
	}
	appendFile(t, segs1[len(segs1)-1].path, garbage)

	b = b.restart()
	got := readAll(t, b.addr, false)
	for p, r := range got {
		var phantoms []int64
		for _, m := range r.msgs {
			if m.payload == "" {
				phantoms = append(phantoms, m.offset)
			}
		}
		if len(phantoms) > 0 {
			t.Errorf("PHANTOM: partition %d serves %d empty messages made from the appended tail, at offsets %v…",
				p, len(phantoms), phantoms[:min(len(phantoms), 5)])
		}
	}
	l.audit(t, got, auditOpts{exact: true})
	b.requireAlive("restart over a zero/garbage tail")
}

// TestBinarySigstopDuringProduce freezes the broker (SIGSTOP) while
// producers pipeline puts, keeps it frozen for two seconds by the clock (the
// pause is the fault), resumes it (SIGCONT), and checks that producing goes
// on, every acknowledged message is stored and nothing is invented.
func TestBinarySigstopDuringProduce(t *testing.T) {
	t.Parallel()
	b := startBroker(t, config{})
	l := newLedger()
	const pause = 2 * time.Second
	var frozenAcks int64
	load(t, b.addr, "stop", 3, allParts, l, 300, func() {
		b.signal(syscall.SIGSTOP)
		require.Eventually(t, func() bool { return b.procState() == 'T' }, 10*time.Second, time.Millisecond,
			"the broker never showed state T (stopped) after SIGSTOP")
		stoppedAt := time.Now()
		require.Eventually(t, func() bool { return time.Since(stoppedAt) >= pause }, 2*pause, 10*time.Millisecond)
		frozenAcks = l.nAck.Load() // replies already on the wire at SIGSTOP are read meanwhile
		b.signal(syscall.SIGCONT)
		require.Eventually(t, func() bool { return l.nAck.Load() >= frozenAcks+300 }, 60*time.Second, time.Millisecond,
			"producers made no progress after SIGCONT: %d acknowledged since", l.nAck.Load()-frozenAcks)
	})
	b.requireAlive("SIGSTOP/SIGCONT")
	l.audit(t, readAll(t, b.addr, false), auditOpts{})
	c := dial(t, b.addr)
	putSync(t, c, l, 2, "after-stop-p2-0")
	b.requireAlive("SIGSTOP/SIGCONT and a new put")
}
