package conn

import (
	"context"
	"sync"
)

// Pool keeps one live connection per broker address: Get dials on first use
// and again after a connection ended, sharing one dial among concurrent
// callers. It is how owners (producer, consumer) reconnect.
type Pool struct {
	opts   Options
	onDial func(addr string, err error)

	ctx    context.Context // ends at Close; bounds dials
	cancel context.CancelFunc

	mu     sync.Mutex // guards conns, closed and wg.Add
	conns  map[string]*poolEntry
	closed bool
	wg     sync.WaitGroup // dials and closers of dead connections
}

type poolEntry struct {
	c       *Conn
	dialing chan struct{} // non-nil while a dial runs; closed when it ends
	err     error         // result of the last failed dial
}

// NewPool returns a pool dialling with opts. onDial (optional) is called
// after every dial attempt, once per attempt whatever the number of waiters.
func NewPool(opts Options, onDial func(addr string, err error)) *Pool {
	ctx, cancel := context.WithCancel(context.Background())
	return &Pool{opts: opts, onDial: onDial, ctx: ctx, cancel: cancel, conns: map[string]*poolEntry{}}
}

// Get returns a live connection to addr, dialling when there is none. It
// waits for a dial within ctx; a failed dial returns its error (wrapping
// ErrDial) to every waiter, and the next Get dials again.
func (p *Pool) Get(ctx context.Context, addr string) (*Conn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		e := p.conns[addr]
		if e == nil {
			e = &poolEntry{}
			p.conns[addr] = e
		}
		if c := e.c; c != nil {
			select {
			case <-c.Done():
				// Dead: its goroutines end by themselves; Close waits for them
				// off the caller's goroutine, which may be that connection's
				// own reader (a Handler sending again).
				e.c = nil
				p.spawnLocked(func() { c.Close() })
			default:
				p.mu.Unlock()
				return c, nil
			}
		}
		ch := e.dialing
		if ch == nil {
			ch = make(chan struct{})
			e.dialing = ch
			p.spawnLocked(func() { p.dial(addr, e, ch) })
		}
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.ctx.Done():
			return nil, ErrClosed
		}
		p.mu.Lock()
		c, err := e.c, e.err
		p.mu.Unlock()
		if c == nil {
			if err == nil {
				err = ErrClosed
			}
			return nil, err
		}
	}
}

func (p *Pool) spawnLocked(f func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
}

func (p *Pool) dial(addr string, e *poolEntry, ch chan struct{}) {
	c, err := Dial(p.ctx, addr, p.opts)
	if p.onDial != nil {
		p.onDial(addr, err)
	}
	p.mu.Lock()
	e.dialing = nil
	closed := p.closed
	switch {
	case err != nil:
		e.err = err
	case closed:
		e.err = ErrClosed
	default:
		e.c, e.err = c, nil
	}
	close(ch)
	p.mu.Unlock()
	if err == nil && closed {
		c.Close()
	}
}

// Close closes every connection (requests in flight fail with ErrClosed),
// stops dials and waits for the pool's goroutines. Get fails with ErrClosed
// afterwards. It must not be called from a Handler. Idempotent.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	var conns []*Conn
	for _, e := range p.conns {
		if e.c != nil {
			conns = append(conns, e.c)
			e.c = nil
		}
	}
	p.mu.Unlock()
	p.cancel()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
	return nil
}
