package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
)

// ErrNotMaster means this member does not hold the current epoch (it follows,
// campaigns, or has just stepped down); the caller must not act as master.
var ErrNotMaster = errors.New("replica: this member is not the master of the current epoch")

// FailoverConfig configures a Failover driver.
type FailoverConfig struct {
	// Replicas is the replica set (session, paths, brokerId) in ZooKeeper.
	Replicas *coordinator.ReplicaSet
	// Role is the broker side of this member.
	Role Role
	// URI is this member's meta://host:port: the epoch node names it when
	// this member wins, and slave<N> holds it while it follows.
	URI string
	// Grace bounds how long an election holder waits for the other live
	// in-sync members to join (default coordinator.DefaultCampaignGrace).
	Grace time.Duration
	// Log receives the driver's decisions (default: discard).
	Log *slog.Logger
}

// Status is what the driver believes now.
type Status struct {
	Leading bool   // this member is the master of Epoch
	Epoch   int64  // the newest epoch the driver acted on (0 before the first)
	Master  int    // master member of Epoch
	URI     string // master URI of Epoch
}

// Failover is the failover driver of one replica-set member (docs/REPLICATION.md
// "Failover"). Its goroutine, owned by the broker (Start … Close), watches
// the epoch node and the master node of the member's brokerId and drives Role:
//
//   - no epoch yet: member 0 (the configured master) wins the election,
//     creates epoch 1 and leads; the others wait for the epoch;
//   - the epoch names another member: follow it (registering slave<N>); a
//     returning member, the configured master included, does the same;
//   - the master node is gone (its session ended) or the epoch names this
//     member while it does not lead (its own earlier session or process):
//     campaign if this member is in the persisted in-sync set of the epoch.
//     The winner bumps the epoch by compare-and-set, keeps holding the
//     election for its whole term, waits until the master node is free and
//     calls Role.Lead;
//   - leading, and the epoch node changed (another member bumped it): step
//     down (rule 4) — give the election up and follow the new master;
//   - leading, and the session ended (the election is lost with it): stop
//     leading and campaign again from the top.
//
// Role.InSync is not used for eligibility: after the master dies a follower's
// own view says "not in sync" at once, while the persisted in-sync set is the
// set every acknowledged message is guaranteed to be in.
type Failover struct {
	cfg FailoverConfig
	rs  *coordinator.ReplicaSet
	s   *zkrecipes.Session
	log *slog.Logger

	// Owned by the run goroutine.
	lead      *coordinator.Leadership
	slaveReg  *coordinator.Registrar
	following struct {
		epoch int64
		uri   string
	}

	mu     sync.Mutex // guards status, term, started, closed
	status Status
	term   coordinator.Term
	change chan struct{} // closed and replaced on every status change
	cancel context.CancelFunc
	done   chan struct{}
	start  bool
	closed bool
}

// NewFailover validates cfg and returns a driver; Start runs it.
func NewFailover(cfg FailoverConfig) (*Failover, error) {
	if cfg.Replicas == nil || cfg.Role == nil {
		return nil, errors.New("replica: failover needs Replicas and Role")
	}
	if cfg.URI == "" {
		return nil, errors.New("replica: failover needs this member's URI (meta://host:port)")
	}
	if cfg.Role.MemberID() < 0 {
		return nil, fmt.Errorf("replica: member id %d is negative: the configured master is member 0, slaves are their slaveId", cfg.Role.MemberID())
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Failover{cfg: cfg, rs: cfg.Replicas, s: cfg.Replicas.Session(), log: cfg.Log, change: make(chan struct{})}, nil
}

// Start starts the driver's goroutine. It can be called once.
func (f *Failover) Start() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.start || f.closed {
		return errors.New("replica: failover driver already started or closed")
	}
	f.start = true
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan struct{})
	go f.run(ctx)
	return nil
}

// Close stops the driver and waits for it; a held election is given up and
// the slave registration removed (the Role is left as it is). Idempotent.
func (f *Failover) Close(ctx context.Context) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	cancel, done := f.cancel, f.done
	f.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("replica: close failover driver: %w", ctx.Err())
	}
}

// Status returns what the driver believes now.
func (f *Failover) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

// Changed returns a channel closed at the next status change.
func (f *Failover) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.change
}

func (f *Failover) setStatus(st Status, term coordinator.Term) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.term = term
	if st != f.status {
		f.status = st
		close(f.change)
		f.change = make(chan struct{})
	}
}

// WriteISR persists the in-sync set of the epoch this member leads (rules 1
// and 2: before acknowledging without a shrunk-out slave, and before a
// caught-up slave counts). It fails with ErrNotMaster when this member does
// not lead, and with coordinator.ErrEpochChanged once another member bumped
// the epoch (the master must stop acknowledging; the driver steps down).
// The set must include the master itself.
func (f *Failover) WriteISR(ctx context.Context, inSync []int) error {
	f.mu.Lock()
	leading, term := f.status.Leading, f.term
	f.mu.Unlock()
	if !leading {
		return ErrNotMaster
	}
	if !slices.Contains(inSync, f.cfg.Role.MemberID()) {
		inSync = append(slices.Clone(inSync), f.cfg.Role.MemberID())
	}
	return f.rs.WriteISR(ctx, term, inSync)
}

func (f *Failover) me() int { return f.cfg.Role.MemberID() }

func (f *Failover) run(ctx context.Context) {
	defer close(f.done)
	delay := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := f.step(ctx)
		if err == nil || ctx.Err() != nil {
			delay = 50 * time.Millisecond
			continue
		}
		f.log.Warn("failover driver: retrying", "broker_id", f.rs.BrokerID(), "member", f.me(), "err", err, "backoff", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		delay = min(delay*2, 2*time.Second)
	}
	cctx, cancel := context.WithTimeout(context.Background(), f.s.Timeout())
	defer cancel()
	f.giveUp(cctx)
	if f.slaveReg != nil {
		_ = f.slaveReg.Close(cctx)
		f.slaveReg = nil
	}
}

// giveUp releases the election and forgets the term.
func (f *Failover) giveUp(ctx context.Context) {
	if f.lead != nil {
		_ = f.lead.Close(ctx)
		f.lead = nil
	}
	st := f.Status()
	st.Leading = false
	f.setStatus(st, coordinator.Term{})
}

// view is one reading of the replica set's state with the watches to wait on.
type view struct {
	epoch         coordinator.Epoch
	noEpoch       bool
	masterPresent bool
	masterURI     string
	promote       coordinator.Promotion
	hasPromote    bool
	wake          []<-chan zk.Event // epoch, master, promote
	sid           int64
}

// releasedTo reports whether a planned switchover of v's epoch was released
// by its master to member.
func (v view) releasedTo(member int) bool {
	return v.hasPromote && v.promote.State == coordinator.PromotionReleased &&
		v.promote.Epoch == v.epoch.Epoch && v.promote.Member == member
}

func (f *Failover) observe(ctx context.Context) (view, error) {
	if err := f.s.WaitConnected(ctx); err != nil {
		return view{}, err
	}
	v := view{sid: f.s.ID()}
	e, ech, err := f.rs.EpochW(ctx)
	switch {
	case errors.Is(err, coordinator.ErrNoEpoch):
		v.noEpoch = true
	case err != nil:
		return view{}, err
	}
	v.epoch = e
	uri, present, mch, err := f.rs.MasterW(ctx)
	if err != nil {
		return view{}, err
	}
	v.masterURI, v.masterPresent = uri, present
	pr, has, pch, err := f.rs.PromotionW(ctx)
	if err != nil && pch == nil {
		return view{}, err
	}
	if err != nil {
		f.log.Warn("ignoring an unreadable promotion request", "broker_id", f.rs.BrokerID(), "err", err)
	}
	v.promote, v.hasPromote = pr, has
	v.wake = []<-chan zk.Event{ech, mch, pch}
	return v, nil
}

// wait blocks until a watch of v fires, the session of v ends, extra is
// closed, or ctx ends.
func (f *Failover) wait(ctx context.Context, v view, extra <-chan struct{}) {
	var w [3]<-chan zk.Event
	copy(w[:], v.wake)
	select {
	case <-w[0]:
	case <-w[1]:
	case <-w[2]:
	case <-extra:
	case <-f.s.Expired(v.sid):
	case <-ctx.Done():
	}
}

// step observes, acts once, and waits for the next change.
func (f *Failover) step(ctx context.Context) error {
	if f.lead != nil {
		// The term ends with the session even while ZooKeeper is unreachable
		// (observing blocks until it is back).
		lost := f.lead.Lost()
		octx, cancel := context.WithCancel(ctx)
		stop := make(chan struct{})
		go func() {
			select {
			case <-lost:
				cancel()
			case <-stop:
			}
		}()
		v, err := f.observe(octx)
		close(stop)
		cancel()
		select {
		case <-lost:
			f.log.Warn("lost the election (ZooKeeper session ended); campaigning again", "broker_id", f.rs.BrokerID(), "member", f.me())
			f.giveUp(ctx)
			return nil
		default:
		}
		if err != nil {
			return err
		}
		return f.stepLeading(ctx, v)
	}
	v, err := f.observe(ctx)
	if err != nil {
		return err
	}
	switch {
	case v.noEpoch && f.me() != 0:
		f.wait(ctx, v, nil) // the configured master creates epoch 1
		return nil
	case !v.noEpoch && v.epoch.Master == f.me() && v.hasPromote && v.promote.State == coordinator.PromotionReleased &&
		v.promote.Epoch == v.epoch.Epoch && v.promote.Member != f.me():
		return f.awaitHandoff(ctx, v)
	case !v.noEpoch && v.epoch.Master != f.me() && v.masterPresent && !v.releasedTo(f.me()):
		// Another member leads (the master node may still be our own while
		// we step down: Follow deregisters it).
		acted, err := f.follow(ctx, v)
		if err != nil || acted {
			return err // acted: observe again, Follow may have consumed v's watches
		}
		f.wait(ctx, v, nil)
		return nil
	}
	// No master: the epoch's master is gone (or has not registered yet), or
	// the epoch names this member's own earlier session, or nothing was
	// bootstrapped yet.
	return f.campaign(ctx, v)
}

// stepLeading handles a change while this member leads.
func (f *Failover) stepLeading(ctx context.Context, v view) error {
	f.mu.Lock()
	term := f.term
	f.mu.Unlock()
	if v.noEpoch || v.epoch.Version != term.Epoch.Version {
		f.log.Warn("stepping down: the epoch moved on", "broker_id", f.rs.BrokerID(), "member", f.me(),
			"our_epoch", term.Epoch.Epoch, "epoch", v.epoch.Epoch, "master", v.epoch.Master)
		f.giveUp(ctx)
		return nil // the next step follows the new master
	}
	if v.hasPromote && v.promote.State == coordinator.PromotionRequested {
		return f.handOff(ctx, v, term)
	}
	f.wait(ctx, v, f.lead.Lost()) // a lost election is handled by the next step
	return nil
}

// follow makes the Role follow the master of v's epoch (once per epoch) and
// keeps this member's slave<N> registration. Role.Follow is bounded by the
// epoch changing, the session ending, and two session timeouts.
func (f *Failover) follow(ctx context.Context, v view) (acted bool, err error) {
	e := v.epoch
	if f.following.epoch == e.Epoch && f.following.uri == e.URI {
		return false, nil
	}
	if f.slaveReg == nil {
		p := f.rs.Paths()
		r := coordinator.NewSlaveRegistrar(f.s, p, coordinator.BrokerInfo{ID: f.rs.BrokerID(), URI: f.cfg.URI}, f.me(), f.log)
		if err := r.Start(ctx, nil); err != nil {
			return true, fmt.Errorf("replica: register as slave%d of broker %d: %w", f.me(), f.rs.BrokerID(), err)
		}
		f.slaveReg = r
	}
	f.log.Info("following", "broker_id", f.rs.BrokerID(), "member", f.me(), "epoch", e.Epoch, "master", e.Master, "uri", e.URI)
	fctx, cancel := context.WithTimeout(ctx, 2*f.s.Timeout())
	defer cancel()
	go func() {
		select {
		case <-v.wake[0]: // the epoch changed
		case <-f.s.Expired(v.sid):
		case <-fctx.Done():
		}
		cancel()
	}()
	if err := f.cfg.Role.Follow(fctx, e.Epoch, e.URI); err != nil {
		return true, fmt.Errorf("replica: follow member %d (%s) in epoch %d: %w", e.Master, e.URI, e.Epoch, err)
	}
	f.following.epoch, f.following.uri = e.Epoch, e.URI
	f.setStatus(Status{Epoch: e.Epoch, Master: e.Master, URI: e.URI}, coordinator.Term{})
	return true, nil
}

// eligible reports whether this member may stand: it is in the in-sync set
// of the newest epoch (or, before any epoch, it is member 0), and the Role
// does not object (LeadChecker: e.g. a new or wiped data directory).
func (f *Failover) eligible(ctx context.Context) (bool, coordinator.Epoch, coordinator.ISR, error) {
	e, isr, err := f.rs.State(ctx)
	if errors.Is(err, coordinator.ErrNoEpoch) {
		return f.me() == 0, coordinator.Epoch{}, coordinator.ISR{}, nil
	}
	if err != nil {
		return false, e, isr, err
	}
	ok := isr.Epoch == e.Epoch && isr.Contains(f.me())
	if c, has := f.cfg.Role.(LeadChecker); ok && has {
		if why := c.CanLead(); why != nil {
			f.log.Warn("in the in-sync set but not standing", "broker_id", f.rs.BrokerID(), "member", f.me(), "why", why)
			ok = false
		}
	}
	return ok, e, isr, nil
}

func (f *Failover) logEnd() int64 {
	var sum int64
	for _, end := range f.cfg.Role.LogEnds() {
		sum += end
	}
	return sum
}

// campaign stands for election while nothing in v changes, and leads if it wins.
func (f *Failover) campaign(ctx context.Context, v view) error {
	ok, _, _, err := f.eligible(ctx)
	if err != nil {
		return err
	}
	if !ok {
		f.log.Info("master gone but not in the in-sync set: not standing", "broker_id", f.rs.BrokerID(), "member", f.me())
		f.wait(ctx, v, nil)
		return nil
	}
	// Stand until we win or the master / epoch changes (someone else won).
	cctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		f.wait(cctx, v, nil)
		cancel()
	}()
	c := coordinator.Candidate{Member: f.me(), LogEnd: f.logEnd()}
	f.log.Info("campaigning", "broker_id", f.rs.BrokerID(), "member", f.me(), "log_end", c.LogEnd)
	lead, err := f.rs.Campaign(cctx, c, coordinator.CampaignOptions{Grace: f.cfg.Grace, Chosen: v.releasedTo(f.me())})
	cancel()
	<-stopped
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.Canceled) {
			return nil // something changed: look again
		}
		return err
	}
	if err := f.win(ctx, lead); err != nil {
		cctx, c := context.WithTimeout(context.WithoutCancel(ctx), f.s.Timeout())
		_ = lead.Close(cctx)
		c()
		f.lead = nil
		if errors.Is(err, errNotEligible) || errors.Is(err, coordinator.ErrEpochChanged) {
			f.log.Info("won the election but may not lead", "broker_id", f.rs.BrokerID(), "member", f.me(), "why", err)
			return nil
		}
		return err
	}
	return nil
}

var errNotEligible = errors.New("replica: not in the in-sync set of the newest epoch")

// win turns a held election into mastership: re-check eligibility on fresh
// state, bump the epoch (or create epoch 1), stop following, wait for the
// master node to be free, and lead.
func (f *Failover) win(ctx context.Context, lead *coordinator.Leadership) error {
	ok, e, isr, err := f.eligible(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return errNotEligible
	}
	var term coordinator.Term
	if e.Epoch == 0 { // no epoch yet (eligible: member 0)
		term, err = f.rs.Bootstrap(ctx, f.me(), f.cfg.URI)
	} else {
		term, err = f.rs.BumpEpoch(ctx, e, f.me(), f.cfg.URI, f.nextISR(ctx, isr))
	}
	if err != nil {
		return err
	}
	f.lead = lead
	f.log.Info("won the election", "broker_id", f.rs.BrokerID(), "member", f.me(), "epoch", term.Epoch.Epoch)
	if f.slaveReg != nil {
		_ = f.slaveReg.Close(ctx)
		f.slaveReg = nil
	}
	f.following.epoch, f.following.uri = 0, ""
	if err := f.awaitMasterNodeFree(ctx, lead); err != nil {
		return err
	}
	if err := f.cfg.Role.Lead(ctx, term.Epoch.Epoch); err != nil {
		return fmt.Errorf("replica: lead epoch %d: %w", term.Epoch.Epoch, err)
	}
	f.setStatus(Status{Leading: true, Epoch: term.Epoch.Epoch, Master: f.me(), URI: f.cfg.URI}, term)
	if pr, ok, _, err := f.rs.PromotionW(ctx); err == nil && ok && pr.Member == f.me() {
		_ = f.rs.DeletePromotion(ctx, pr.Version) // the switchover is done
	}
	return nil
}

// nextISR is the in-sync set the new epoch starts with: this member plus the
// members of the old set that are alive (registered as slaves). They hold
// every acknowledged message; until they caught up with the new master they
// block acknowledgements or are shrunk out (rule 2). Dead members are left
// out so that the new master need not wait for them.
func (f *Failover) nextISR(ctx context.Context, old coordinator.ISR) []int {
	next := []int{f.me()}
	live, err := f.rs.Members(ctx)
	if err != nil {
		return next
	}
	for _, m := range old.InSync {
		if _, ok := live[m]; ok && m != f.me() {
			next = append(next, m)
		}
	}
	return next
}

// awaitMasterNodeFree waits until the master node is gone or is ours (the old
// master deregisters when it steps down), so that Lead can register it.
func (f *Failover) awaitMasterNodeFree(ctx context.Context, lead *coordinator.Leadership) error {
	for {
		uri, present, ch, err := f.rs.MasterW(ctx)
		if err != nil {
			return err
		}
		if !present || uri == f.cfg.URI {
			return nil
		}
		f.log.Info("waiting for the old master to deregister", "broker_id", f.rs.BrokerID(), "member", f.me(), "master_uri", uri)
		select {
		case <-ch:
		case <-lead.Lost():
			return fmt.Errorf("replica: lost the election while waiting for %s to deregister: %w", uri, zkrecipes.ErrSessionLost)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Handoff is optionally implemented by a Role to make a planned switchover
// (metaq cluster promote) lose nothing in flight: PrepareHandoff stops
// accepting puts (refused as on a follower) and returns once member's
// acknowledged offsets equal this master's log ends. If it returns an error
// the Role must accept puts again; the switchover is then refused. Without
// it, puts in flight during the switch fail (the producer retries them);
// nothing acknowledged is lost either way, since the target is in the
// in-sync set and so holds every acknowledged message.
type Handoff interface {
	PrepareHandoff(ctx context.Context, member int) error
}

// handOff answers a switchover request while leading: refuse it, or make the
// Role ready, mark the request released and give the election up so that the
// target (and only it: the master node stays registered until it wins) wins.
func (f *Failover) handOff(ctx context.Context, v view, term coordinator.Term) error {
	pr := v.promote
	refuse := func(format string, args ...any) error {
		pr.State, pr.Reason = coordinator.PromotionRefused, fmt.Sprintf(format, args...)
		f.log.Warn("switchover refused", "broker_id", f.rs.BrokerID(), "target", pr.Member, "reason", pr.Reason)
		return f.rs.UpdatePromotion(ctx, pr)
	}
	if pr.Member == f.me() {
		return f.rs.DeletePromotion(ctx, pr.Version) // already master
	}
	isr, err := f.rs.ISR(ctx)
	if err != nil {
		return err
	}
	if isr.Epoch != term.Epoch.Epoch || !isr.Contains(pr.Member) {
		return refuse("member %d is not in the in-sync set of epoch %d (in sync: %v); wait until it has caught up", pr.Member, term.Epoch.Epoch, isr.InSync)
	}
	live, err := f.rs.Members(ctx)
	if err != nil {
		return err
	}
	if _, ok := live[pr.Member]; !ok {
		return refuse("member %d is not registered as a slave of broker %d: is it running?", pr.Member, f.rs.BrokerID())
	}
	if h, ok := f.cfg.Role.(Handoff); ok {
		hctx, cancel := context.WithTimeout(ctx, 2*f.s.Timeout())
		err := h.PrepareHandoff(hctx, pr.Member)
		cancel()
		if err != nil {
			return refuse("member %d did not catch up: %v", pr.Member, err)
		}
	}
	pr.State, pr.Epoch, pr.Reason = coordinator.PromotionReleased, term.Epoch.Epoch, ""
	if err := f.rs.UpdatePromotion(ctx, pr); err != nil {
		return fmt.Errorf("replica: release epoch %d to member %d: %w", term.Epoch.Epoch, pr.Member, err)
	}
	f.log.Info("switchover: released the election", "broker_id", f.rs.BrokerID(), "epoch", term.Epoch.Epoch, "target", pr.Member)
	f.giveUp(ctx)
	return nil
}

// awaitHandoff is the released master waiting for the target to win: the
// epoch change makes it follow. If the target has not won within two
// session timeouts (it died, or it is not eligible after all), the request
// is withdrawn and this member stands again.
func (f *Failover) awaitHandoff(ctx context.Context, v view) error {
	t := time.NewTimer(2 * f.s.Timeout())
	defer t.Stop()
	timeout := make(chan struct{})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-t.C:
			close(timeout)
		case <-stop:
		}
	}()
	f.wait(ctx, v, timeout)
	select {
	case <-timeout:
		f.log.Warn("switchover: the target did not take over; withdrawing the request", "broker_id", f.rs.BrokerID(),
			"target", v.promote.Member, "epoch", v.epoch.Epoch)
		return f.rs.DeletePromotion(ctx, v.promote.Version)
	default:
		return nil
	}
}
