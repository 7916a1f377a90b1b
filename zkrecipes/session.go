package zkrecipes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/metaq-go/metaq/internal/zkwire"
)

// State is the connection state of a Session as recipes see it (the model of
// Apache Curator's ConnectionState).
type State int

// Session states.
const (
	// StateConnected: a session is established. After a StateLost it means a
	// NEW session (Event.NewSession is true): nothing of the old one survives.
	StateConnected State = iota + 1
	// StateSuspended: the connection dropped; the session may still be alive on
	// the server, so what a recipe holds is in doubt until reconnect or loss.
	StateSuspended
	// StateReconnected: the connection is back with the same session.
	StateReconnected
	// StateLost: the session expired, or was presumed expired after the client
	// had been disconnected for a whole session timeout. Ephemeral nodes and
	// watches of that session are gone; locks and leadership are lost.
	StateLost
	// StateClosed: Close was called.
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateSuspended:
		return "suspended"
	case StateReconnected:
		return "reconnected"
	case StateLost:
		return "lost"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Event is a session state change.
type Event struct {
	State      State
	SessionID  int64 // the session the event is about (for Lost: the session that ended)
	NewSession bool  // StateConnected after a loss: a new session id
	Presumed   bool  // StateLost decided locally after a whole session timeout without a connection
	Time       time.Time
}

// Session wraps a go-zookeeper connection: it turns the client's raw events
// into Connected / Suspended / Reconnected / Lost states delivered reliably to
// every subscriber (the client's own event channel drops events past 6; this
// uses the event callback and unbounded per-subscriber queues), tracks when it
// last heard from the server, applies an optional chroot and default ACLs to
// every operation, and never silently adopts a new session after expiry: a
// StateLost is always delivered first, and Expired(id) is closed for the old id.
type Session struct {
	servers []string
	opts    sessionOptions
	log     *slog.Logger

	lastHeard atomic.Int64 // unix nanos of the last byte read from a server
	answered  atomic.Int64 // unix nanos: send time of the newest request answered on the current session
	run       atomic.Int64 // Liveness.Run
	fenceNs   atomic.Int64 // Liveness window: 2/3 of the session timeout

	mu          sync.Mutex // guards every field below
	conn        *zk.Conn
	connGen     int          // incremented on each connection replacement; stale callbacks are ignored
	abandoned   *atomic.Bool // set when the connection of connGen is given up for good
	state       State
	sessionID   int64
	password    []byte
	timeout     time.Duration           // negotiated session timeout
	handshakeID int64                   // session id of the latest connect handshake of connGen
	expired     map[int64]chan struct{} // closed when that session is lost
	subs        map[*Subscription]struct{}
	lostTimer   *time.Timer
	connected   chan struct{} // closed when state is Connected/Reconnected; replaced on suspension
	closed      bool
	everUp      bool // a session was established at least once
	watchEvts   atomic.Int64
}

// Connect opens a session to servers ("host:port" each) and waits until it is
// established or ctx ends. The returned Session reconnects by itself; Close it
// when done.
func Connect(ctx context.Context, servers []string, opts ...Option) (*Session, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("zkrecipes: no ZooKeeper servers given: pass host:port addresses, e.g. 127.0.0.1:2181")
	}
	s := &Session{servers: servers, opts: o, log: o.logger, expired: map[int64]chan struct{}{},
		subs: map[*Subscription]struct{}{}, connected: make(chan struct{})}
	if err := s.dial(); err != nil {
		return nil, err
	}
	if err := s.WaitConnected(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("zkrecipes: connect to ZooKeeper at %s: %w (is ZooKeeper running? scripts/zk.sh start)", strings.Join(servers, ","), err)
	}
	return s, nil
}

// dial creates a new underlying connection; callbacks of older ones are ignored.
func (s *Session) dial() error {
	abandoned := new(atomic.Bool)
	s.mu.Lock()
	s.connGen++
	gen := s.connGen
	s.abandoned = abandoned
	s.mu.Unlock()
	d := &zkwire.TrackingDialer{
		OnRead:     func() { s.lastHeard.Store(time.Now().UnixNano()) },
		OnAnswered: func(sent time.Time) { s.onAnswered(gen, sent) },
		OnConnect: func(r zkwire.ConnectResponse) {
			s.mu.Lock()
			if gen == s.connGen && r.SessionID != 0 {
				s.handshakeID = r.SessionID
				s.password = r.Password
				s.timeout = time.Duration(r.TimeoutMs) * time.Millisecond
				s.fenceNs.Store(int64(s.timeout) * 2 / 3)
			}
			s.mu.Unlock()
		},
	}
	zopts := listOf(zk.WithDialer(abandonableDialer(d.Dial, abandoned)),
		zk.WithLogger(slogAdapter{s.log}), zk.WithEventCallback(func(ev zk.Event) { s.onEvent(gen, ev) }))
	// The credentials go with the connection: it submits them after every
	// session handshake (the first, a reconnect, a new session after
	// expiry) before any request, so no request ever runs unauthenticated.
	for _, a := range s.opts.auth {
		zopts = append(zopts, zk.WithAuth(a.scheme, a.data))
	}
	conn, _, err := zk.Connect(s.servers, s.opts.sessionTimeout, zopts...)
	if err != nil {
		return fmt.Errorf("zkrecipes: connect: %w", err)
	}
	s.mu.Lock()
	old := s.conn
	s.conn = conn
	s.mu.Unlock()
	if old != nil {
		go old.Close() // stops the abandoned connection's goroutines without blocking
	}
	return nil
}

// listOf returns its arguments as a slice (go-zookeeper's option type is unexported).
func listOf[T any](xs ...T) []T { return xs }

// onEvent runs on go-zookeeper's goroutines; it must not block.
func (s *Session) onEvent(gen int, ev zk.Event) {
	if ev.Type != zk.EventSession {
		s.watchEvts.Add(1)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.connGen || s.closed {
		return
	}
	switch ev.State {
	case zk.StateHasSession:
		// Not s.conn.SessionID(): the callback can run before dial has
		// stored the new conn (s.conn nil, or the replaced one).
		id := s.handshakeID
		switch {
		case !s.everUp:
			s.everUp = true
			s.setStateLocked(StateConnected, id, false, false)
		case id != s.sessionID:
			if s.state != StateLost {
				s.loseLocked(false)
			}
			s.setStateLocked(StateConnected, id, true, false)
		default:
			s.setStateLocked(StateReconnected, id, false, false)
		}
	case zk.StateDisconnected, zk.StateConnecting:
		if s.state == StateConnected || s.state == StateReconnected {
			s.setStateLocked(StateSuspended, s.sessionID, false, false)
			timeout := s.timeout
			if timeout <= 0 {
				timeout = s.opts.sessionTimeout
			}
			// The server expires the session a timeout after it last heard
			// from us, which is about when we last heard from it (the client
			// pings every third of the timeout), not when we noticed the
			// disconnect (go-zookeeper notices silence only after 2/3 of it).
			wait := timeout
			if last := s.lastHeard.Load(); last != 0 {
				wait = max(timeout-time.Since(time.Unix(0, last)), 0)
			}
			lostID := s.sessionID
			s.lostTimer = time.AfterFunc(wait, func() { s.presumeLost(gen, lostID) })
		}
	case zk.StateExpired:
		if s.state != StateLost {
			s.loseLocked(false)
		}
	case zk.StateAuthFailed:
		s.log.Error("zookeeper authentication failed: check the digest credentials", "servers", s.servers)
	}
}

// presumeLost fires when the client stayed disconnected for a whole session
// timeout: the server has expired (or will expire) the session, so recipes must
// stop trusting it now. The connection is replaced so that the old session can
// never be silently resumed.
func (s *Session) presumeLost(gen int, id int64) {
	s.mu.Lock()
	if gen != s.connGen || s.closed || s.state != StateSuspended || s.sessionID != id || !s.opts.presumeLost {
		s.mu.Unlock()
		return
	}
	// Abandon the old connection before anyone hears of the loss: it is
	// between reconnect attempts, and one that reached the server now would
	// resume the old session (and its Close would then end it, deleting
	// ephemeral nodes that another client may be waiting to see).
	s.abandoned.Store(true)
	s.loseLocked(true)
	s.mu.Unlock()
	if err := s.dial(); err != nil {
		s.log.Error("zookeeper reconnect after presumed session loss failed", "err", err)
	}
}

func (s *Session) loseLocked(presumed bool) {
	old := s.sessionID
	s.setStateLocked(StateLost, old, false, presumed)
	if ch, ok := s.expired[old]; ok {
		close(ch)
		delete(s.expired, old)
	}
	s.sessionID = 0
	s.password = nil
}

func (s *Session) setStateLocked(st State, id int64, newSession, presumed bool) {
	if s.lostTimer != nil && st != StateSuspended {
		s.lostTimer.Stop()
		s.lostTimer = nil
	}
	wasUp := s.state == StateConnected || s.state == StateReconnected
	s.state = st
	if (st == StateConnected || st == StateReconnected) && id != s.sessionID {
		s.run.Add(1) // nothing proven of the old session counts for the new one
		s.answered.Store(0)
	}
	if st == StateConnected || st == StateReconnected {
		s.sessionID = id
		if !wasUp {
			close(s.connected)
		}
	} else if wasUp {
		s.connected = make(chan struct{})
	}
	ev := Event{State: st, SessionID: id, NewSession: newSession, Presumed: presumed, Time: time.Now()}
	s.log.Info("zookeeper session state", "state", st.String(), "session", fmt.Sprintf("0x%x", id), "new_session", newSession, "presumed", presumed)
	for sub := range s.subs {
		sub.push(ev)
	}
}

// State returns the current state.
func (s *Session) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// ID returns the current session id, 0 while none is established.
func (s *Session) ID() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != StateConnected && s.state != StateReconnected && s.state != StateSuspended {
		return 0
	}
	return s.sessionID
}

// Password returns the current session's password (with ID, what another
// client needs to resume or close this session).
func (s *Session) Password() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.password...)
}

// Timeout returns the session timeout the server granted (the requested one before that).
func (s *Session) Timeout() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timeout > 0 {
		return s.timeout
	}
	return s.opts.sessionTimeout
}

// LastHeard returns when a byte last arrived from a server (zero before the first).
// A client that has not heard from ZooKeeper for close to the session timeout
// must assume its session may have expired on the server.
func (s *Session) LastHeard() time.Time {
	n := s.lastHeard.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Liveness is what a Session can prove about its own session: a client that
// must not act on stale ownership (self-fencing) acts only while
// time.Since(Answered) < Timeout minus a safety margin, and re-checks what it
// owns whenever Run changed since it last did.
type Liveness struct {
	// Answered is the send time of the newest request the server answered
	// on the current session (zero before the first). The server renews a
	// session on every packet it receives, so it cannot expire the session
	// before Answered + Timeout, however late the answer was read; the time
	// an answer was read (LastHeard) proves nothing after a process pause.
	Answered time.Time
	// Run changes when the proof lapsed: an answered request was sent more
	// than Window after the previous one (the session may have been in
	// doubt in between, e.g. the process was stopped), or the session
	// changed. Equal Runs mean the session was provably alive all along.
	Run int64
	// Window is 2/3 of the session timeout (go-zookeeper also gives a
	// silent connection up after 2/3 of it).
	Window time.Duration
}

// Until returns the instant until which the session is provably alive,
// keeping margin in hand (Answered + Timeout - margin); zero before the first
// answer.
func (l Liveness) Until(timeout, margin time.Duration) time.Time {
	if l.Answered.IsZero() {
		return time.Time{}
	}
	return l.Answered.Add(timeout - margin)
}

// Liveness returns the session's current liveness proof. It is cheap
// (atomic loads): a delivery path may call it per message.
func (s *Session) Liveness() Liveness {
	// Answered before Run: a stamp that started a new run is stored
	// after the run was bumped (onAnswered), so a caller that sees the new
	// stamp also sees the new run.
	run := s.run.Load()
	a := s.answered.Load()
	if r2 := s.run.Load(); r2 != run {
		run, a = r2, s.answered.Load()
	}
	l := Liveness{Run: run, Window: time.Duration(s.fenceNs.Load())}
	if l.Window <= 0 {
		l.Window = s.opts.sessionTimeout * 2 / 3
	}
	if a != 0 {
		l.Answered = time.Unix(0, a)
	}
	return l
}

// onAnswered records the send time of an answered request of connection
// generation gen (answers on a replaced connection are ignored).
func (s *Session) onAnswered(gen int, sent time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.connGen {
		return
	}
	ns := sent.UnixNano()
	prev := s.answered.Load()
	if ns <= prev {
		return
	}
	window := s.fenceNs.Load()
	if window <= 0 {
		window = int64(s.opts.sessionTimeout) * 2 / 3
	}
	if prev == 0 || ns-prev > window {
		s.run.Add(1)
	}
	s.answered.Store(ns)
}

// WatchEvents returns how many watch notifications this session has received
// (useful to show that a recipe wakes only whom it must).
func (s *Session) WatchEvents() int64 { return s.watchEvts.Load() }

// Expired returns a channel that is closed when session id is lost. For an id
// that is not the current session the channel is already closed.
func (s *Session) Expired(id int64) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == 0 || id != s.sessionID || s.state == StateLost || s.closed {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	ch, ok := s.expired[id]
	if !ok {
		ch = make(chan struct{})
		s.expired[id] = ch
	}
	return ch
}

// WaitConnected blocks until the session is connected (not suspended or lost) or ctx ends.
func (s *Session) WaitConnected(ctx context.Context) error {
	for {
		s.mu.Lock()
		st, ch, closed := s.state, s.connected, s.closed
		s.mu.Unlock()
		if closed {
			return ErrClosed
		}
		if st == StateConnected || st == StateReconnected {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
		}
	}
}

// Conn returns the current underlying go-zookeeper connection. It changes
// after a presumed loss; prefer the Session's own operations.
func (s *Session) Conn() *zk.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// Close ends the session (its ephemeral nodes go at once) and stops every subscription.
func (s *Session) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	conn := s.conn
	s.setStateLocked(StateClosed, s.sessionID, false, false)
	s.closed = true
	for id, ch := range s.expired {
		close(ch)
		delete(s.expired, id)
	}
	subs := s.subs
	s.subs = map[*Subscription]struct{}{}
	s.mu.Unlock()
	for sub := range subs {
		sub.close()
	}
	if conn != nil {
		conn.Close()
	}
}

// Subscribe returns a subscription that receives every later state change in
// order; nothing is dropped however slowly it is read. Close it when done.
func (s *Session) Subscribe() *Subscription {
	sub := newSubscription(s)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sub.close()
		return sub
	}
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	return sub
}

// Subscription delivers session events on C.
type Subscription struct {
	C <-chan Event

	s     *Session
	out   chan Event
	mu    sync.Mutex // guards queue and done
	queue []Event
	kick  chan struct{}
	done  bool
	quit  chan struct{}
}

func newSubscription(s *Session) *Subscription {
	out := make(chan Event)
	sub := &Subscription{C: out, s: s, out: out, kick: make(chan struct{}, 1), quit: make(chan struct{})}
	go sub.pump()
	return sub
}

func (sub *Subscription) push(ev Event) {
	sub.mu.Lock()
	sub.queue = append(sub.queue, ev)
	sub.mu.Unlock()
	select {
	case sub.kick <- struct{}{}:
	default:
	}
}

func (sub *Subscription) pump() {
	defer close(sub.out)
	for {
		sub.mu.Lock()
		var ev Event
		have := len(sub.queue) > 0
		if have {
			ev = sub.queue[0]
			sub.queue = sub.queue[1:]
		}
		sub.mu.Unlock()
		if !have {
			select {
			case <-sub.kick:
				continue
			case <-sub.quit:
				return
			}
		}
		select {
		case sub.out <- ev:
		case <-sub.quit:
			return
		}
	}
}

func (sub *Subscription) close() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if !sub.done {
		sub.done = true
		close(sub.quit)
	}
}

// Close stops the subscription; C is closed soon after.
func (sub *Subscription) Close() {
	sub.s.mu.Lock()
	delete(sub.s.subs, sub)
	sub.s.mu.Unlock()
	sub.close()
}

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Printf(format string, args ...any) {
	a.l.Debug("zk: " + fmt.Sprintf(format, args...))
}

// errAbandoned is what an abandoned connection's dial and writes return.
var errAbandoned = errors.New("zkrecipes: connection abandoned after a presumed session loss")

// abandonableDialer wraps dial so that once abandoned is set, the connection
// never talks to a server again: new dials fail and writes on a socket it
// already has fail, so its reconnect loop cannot resume the old session (a
// connect request written before the loss went to a server that was
// unreachable then).
func abandonableDialer(dial func(network, address string, timeout time.Duration) (net.Conn, error),
	abandoned *atomic.Bool) func(network, address string, timeout time.Duration) (net.Conn, error) {
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		if abandoned.Load() {
			return nil, errAbandoned
		}
		c, err := dial(network, address, timeout)
		if err != nil {
			return nil, err
		}
		return &abandonableConn{Conn: c, abandoned: abandoned}, nil
	}
}

type abandonableConn struct {
	net.Conn
	abandoned *atomic.Bool
}

func (c *abandonableConn) Write(p []byte) (int, error) {
	if c.abandoned.Load() {
		return 0, errAbandoned
	}
	return c.Conn.Write(p)
}
