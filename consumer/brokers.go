package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

var errNoBroker = errors.New("consumer: broker not registered in ZooKeeper")

// brokerConn is one pipelined connection to a broker master, shared by the
// fetchers of all its partitions.
type brokerConn struct {
	c        *conn.Conn
	longPoll bool // the broker's version reply carries protocol.LongPollCapability
}

// brokerPool dials and keeps one connection per broker id.
type brokerPool struct {
	view *coordinator.ClusterView
	log  *slog.Logger
	opts conn.Options // TLS and credentials of every dial

	mu      sync.Mutex // guards entries, closed
	entries map[int]*brokerEntry
	closed  bool
}

type brokerEntry struct {
	mu sync.Mutex // guards bc; held while dialing this broker
	bc *brokerConn
}

func newBrokerPool(view *coordinator.ClusterView, log *slog.Logger, opts conn.Options) *brokerPool {
	opts.Logger = log
	return &brokerPool{view: view, log: log, opts: opts, entries: map[int]*brokerEntry{}}
}

// get returns a live connection to broker id, dialing (and asking its
// version, once per connection) when needed.
func (p *brokerPool) get(ctx context.Context, id int) (*brokerConn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	e := p.entries[id]
	if e == nil {
		e = &brokerEntry{}
		p.entries[id] = e
	}
	p.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.bc != nil && e.bc.c.Err() == nil {
		return e.bc, nil
	}
	if e.bc != nil {
		_ = e.bc.c.Close()
		e.bc = nil
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addr, err := p.address(dctx, id)
	if err != nil {
		return nil, err
	}
	c, err := conn.Dial(dctx, addr, p.opts)
	if err != nil {
		return nil, err
	}
	v, err := c.Version(dctx)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("consumer: version of broker %d at %s: %w", id, addr, err)
	}
	bc := &brokerConn{c: c, longPoll: hasToken(v, protocol.LongPollCapability)}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		_ = c.Close()
		return nil, ErrClosed
	}
	p.log.Debug("consumer: connected to broker", "broker", id, "addr", addr, "version", v, "longPoll", bc.longPoll)
	e.bc = bc
	return bc, nil
}

// address returns broker id's address, waiting a little for the cluster
// view (it may still be loading, or the broker re-registering).
func (p *brokerPool) address(ctx context.Context, id int) (string, error) {
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	for {
		changed := p.view.Changed()
		if addr, ok := p.view.Brokers()[id]; ok {
			return addr, nil
		}
		select {
		case <-changed:
		case <-t.C:
			return "", fmt.Errorf("%w: broker %d", errNoBroker, id)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// drop closes bc after a connection error so that the next get redials.
func (p *brokerPool) drop(id int, bc *brokerConn) {
	p.mu.Lock()
	e := p.entries[id]
	p.mu.Unlock()
	if e == nil {
		return
	}
	e.mu.Lock()
	if e.bc == bc {
		e.bc = nil
	}
	e.mu.Unlock()
	_ = bc.c.Close()
}

// close closes every connection. Idempotent.
func (p *brokerPool) close() {
	p.mu.Lock()
	p.closed = true
	entries := p.entries
	p.entries = map[int]*brokerEntry{}
	p.mu.Unlock()
	for _, e := range entries {
		e.mu.Lock()
		if e.bc != nil {
			_ = e.bc.c.Close()
			e.bc = nil
		}
		e.mu.Unlock()
	}
}

func hasToken(s, tok string) bool {
	for _, f := range strings.Fields(s) {
		if f == tok {
			return true
		}
	}
	return false
}
