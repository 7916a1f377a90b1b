package zktest

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"github.com/metaq-go/metaq/internal/zkwire"
)

// Proxy is a TCP fault proxy between ZooKeeper clients and one server. It
// understands ZooKeeper framing, so besides dropping and freezing connections
// it can let a request through and then cut the connection just before the
// request's reply would reach the client: the server did the work, the client
// never learns the result (the "lost create reply" of the recipe literature).
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup // accept loop and pumps

	mu       sync.Mutex // guards everything below
	frozen   bool
	thaw     chan struct{} // closed on Unfreeze
	refuse   bool
	pairs    map[*pipe]struct{}
	cutWhen  func(opcode int32) bool
	cutDone  chan struct{}
	dropWhen func(opcode int32) bool
	dropDone chan struct{}
	closed   bool
}

type pipe struct {
	client, server net.Conn
	cutXid         atomic.Int64 // xid+1 of the request whose reply is cut; 0 = none
	once           sync.Once
}

func (p *pipe) close() {
	p.once.Do(func() { p.client.Close(); p.server.Close() })
}

// NewProxy listens on a free 127.0.0.1 port and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, pairs: map[*pipe]struct{}{}, thaw: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to instead of the server's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse || p.closed
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pp := &pipe{client: c, server: s}
		p.mu.Lock()
		p.pairs[pp] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.clientToServer(pp)
		go p.serverToClient(pp)
	}
}

// gate blocks while the proxy is frozen; it returns false if the pipe closed meanwhile.
func (p *Proxy) gate(pp *pipe) bool {
	for {
		p.mu.Lock()
		frozen, thaw := p.frozen, p.thaw
		_, alive := p.pairs[pp]
		p.mu.Unlock()
		if !alive {
			return false
		}
		if !frozen {
			return true
		}
		<-thaw
	}
}

func (p *Proxy) forget(pp *pipe) {
	pp.close()
	p.mu.Lock()
	delete(p.pairs, pp)
	p.mu.Unlock()
}

func (p *Proxy) clientToServer(pp *pipe) {
	defer p.wg.Done()
	defer p.forget(pp)
	first := true
	for {
		frame, err := zkwire.ReadFrame(pp.client)
		if err != nil {
			return
		}
		if !first {
			if xid, op, herr := zkwire.RequestHeader(frame[4:]); herr == nil {
				p.mu.Lock()
				if p.cutWhen != nil && p.cutWhen(op) {
					pp.cutXid.Store(int64(xid) + 1)
					p.cutWhen = nil
				}
				var dropped chan struct{}
				if p.dropWhen != nil && p.dropWhen(op) {
					dropped = p.dropDone
					p.dropWhen, p.dropDone = nil, nil
				}
				p.mu.Unlock()
				if dropped != nil {
					pp.close()
					close(dropped)
					return
				}
			}
		}
		first = false
		if !p.gate(pp) {
			return
		}
		if _, err := pp.server.Write(frame); err != nil {
			return
		}
	}
}

func (p *Proxy) serverToClient(pp *pipe) {
	defer p.wg.Done()
	defer p.forget(pp)
	first := true
	for {
		frame, err := zkwire.ReadFrame(pp.server)
		if err != nil {
			return
		}
		if !first {
			if xid, _, _, herr := zkwire.ReplyHeader(frame[4:]); herr == nil && xid >= 0 && int64(xid)+1 == pp.cutXid.Load() {
				p.mu.Lock()
				done := p.cutDone
				p.cutDone = nil
				p.mu.Unlock()
				pp.close()
				if done != nil {
					close(done)
				}
				return
			}
		}
		first = false
		if !p.gate(pp) {
			return
		}
		if _, err := pp.client.Write(frame); err != nil {
			return
		}
	}
}

// CutAfterRequest arms a one-shot fault: the next request whose opcode
// satisfies match (see zkwire.Op*) is forwarded to the server, and the
// connection is cut when the server's reply to it arrives, so the reply is
// lost. The returned channel is closed once the cut happened.
func (p *Proxy) CutAfterRequest(match func(opcode int32) bool) <-chan struct{} {
	done := make(chan struct{})
	p.mu.Lock()
	p.cutWhen, p.cutDone = match, done
	p.mu.Unlock()
	return done
}

// DropRequest arms a one-shot fault: the next request whose opcode satisfies
// match (see zkwire.Op*) never reaches the server, and its connection is cut
// instead: the client sees a connection loss for an operation the server
// never did. The returned channel is closed once the cut happened.
func (p *Proxy) DropRequest(match func(opcode int32) bool) <-chan struct{} {
	done := make(chan struct{})
	p.mu.Lock()
	p.dropWhen, p.dropDone = match, done
	p.mu.Unlock()
	return done
}

// Freeze blackholes every current and future connection: bytes are held, not
// delivered, in both directions, and no connection is closed. Clients notice
// only by their own timeouts.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.frozen {
		p.frozen, p.thaw = true, make(chan struct{})
	}
}

// Unfreeze resumes forwarding, delivering what was held.
func (p *Proxy) Unfreeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen {
		p.frozen = false
		close(p.thaw)
	}
}

// DropAll closes every current connection (the client sees a reset); new
// connections are accepted unless Refuse(true).
func (p *Proxy) DropAll() {
	p.mu.Lock()
	pairs := make([]*pipe, 0, len(p.pairs))
	for pp := range p.pairs {
		pairs = append(pairs, pp)
		delete(p.pairs, pp)
	}
	p.mu.Unlock()
	for _, pp := range pairs {
		pp.close()
	}
}

// Refuse makes the proxy close new connections at once (on) or accept them (off).
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// Conns returns the number of connections currently proxied.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pairs)
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	if p.frozen {
		p.frozen = false
		close(p.thaw)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.DropAll()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
