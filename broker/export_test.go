package broker

import (
	"context"

	"github.com/metaq-go/metaq/protocol"
)

// SetHandlerHook installs f where each request's work runs (see
// handlerHook) and returns a function that removes it. Call it before
// starting a broker and restore after its Shutdown.
func SetHandlerHook(f func(req protocol.Request, onLoop bool)) (restore func()) {
	old := handlerHook
	handlerHook = f
	return func() { handlerHook = old }
}

// SetRegisterTopicHook installs f in the registration of auto-created
// topics; same rules as SetHandlerHook.
func SetRegisterTopicHook(f func(ctx context.Context)) (restore func()) {
	old := registerTopicHook
	registerTopicHook = f
	return func() { registerTopicHook = old }
}

// ConnPrincipals lists "principal@ip" of the open connections.
func (b *Broker) ConnPrincipals() []string {
	b.srv.connsMu.Lock()
	defer b.srv.connsMu.Unlock()
	var out []string
	for cn := range b.srv.conns {
		out = append(out, cn.tlsPrincipal+"@"+cn.ip)
	}
	return out
}

// TLSRelays is the number of connections the TLS front handshakes or relays.
func (b *Broker) TLSRelays() int64 { return b.srv.front.active.Load() }

// LongPollParked reports whether a long-poll get waits on the partition.
func (b *Broker) LongPollParked(topic string, part int) bool {
	return b.waiters.has(partKey(topic, part))
}

// PutsExtended is the number of puts added to a batch already waiting in a
// partition's queue instead of being queued anew.
func (b *Broker) PutsExtended() int64 { return b.putsExtended.Load() }

// IdleLoops is the state of the broker's periodic loops: whether each
// sleeps without a timer, and how often each has looked at its work.
type IdleLoops struct {
	Reaper, Resumer, TxReaper                bool
	ReaperLooks, ResumerLooks, TxReaperLooks int64
}

// IdleLoops reports the server's reaper and resumer and the transaction
// reaper.
func (b *Broker) IdleLoops() IdleLoops {
	s, m := b.srv, b.tx
	return IdleLoops{Reaper: s.reaperIdle.Load(), Resumer: s.resumerIdle.Load(), TxReaper: m.reapIdle.Load(),
		ReaperLooks: s.reapTicks.Load(), ResumerLooks: s.resumeTicks.Load(), TxReaperLooks: m.reaps.Load()}
}
