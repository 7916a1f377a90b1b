package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes"
)

// ErrBrokerIDTaken means another live broker already holds this broker id.
var ErrBrokerIDTaken = errors.New("coordinator: broker id already registered by another live broker")

// TopicRegistration is what a broker announces for one topic.
type TopicRegistration struct {
	Topic           string
	NumPartitions   int
	AcceptPublish   bool
	AcceptSubscribe bool
}

// BrokerInfo is what a broker announces about itself.
type BrokerInfo struct {
	ID             int    // 0..1023
	URI            string // meta://host:port
	ConfigChecksum uint32 // CRC-32 of the raw config file
}

// PartitionInfo is the JSON of topics-pub / topics-sub nodes.
type PartitionInfo struct {
	NumParts int    `json:"numParts"`
	Broker   string `json:"broker"`
}

// Registrar keeps a broker registered in ZooKeeper exactly as PROTOCOL.md §10
// describes, re-registers everything after a session expiry (within a moment
// of the new session being established), and deregisters on Close.
//
// A node left by an earlier session of the same broker (a crash and quick
// restart, or the expired session of this process) is recognised by its
// ephemeralOwner and replaced, never fought over; a master node of another
// live broker with the same id (different URI) is a configuration error
// reported as ErrBrokerIDTaken.
type Registrar struct {
	s     *zkrecipes.Session
	paths Paths
	info  BrokerInfo
	log   *slog.Logger

	mu     sync.Mutex // guards topics and closed
	topics map[string]TopicRegistration
	closed bool

	kick chan struct{} // asks the loop to re-register
	stop chan struct{}
	wg   sync.WaitGroup
}

// NewRegistrar prepares a registration; nothing is written before Start.
func NewRegistrar(s *zkrecipes.Session, paths Paths, info BrokerInfo, log *slog.Logger) *Registrar {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Registrar{s: s, paths: paths, info: info, log: log, topics: map[string]TopicRegistration{},
		kick: make(chan struct{}, 1), stop: make(chan struct{})}
}

// Start registers the broker and its topics, then keeps them registered
// across session expiries until Close.
func (r *Registrar) Start(ctx context.Context, topics []TopicRegistration) error {
	for _, t := range topics {
		if err := validRegistration(t); err != nil {
			return err
		}
	}
	r.mu.Lock()
	for _, t := range topics {
		r.topics[t.Topic] = t
	}
	r.mu.Unlock()
	if err := r.registerAll(ctx); err != nil {
		return err
	}
	sub := r.s.Subscribe()
	r.wg.Add(1)
	go r.loop(sub)
	return nil
}

// AddTopic registers one more topic (e.g. an auto-created one).
func (r *Registrar) AddTopic(ctx context.Context, t TopicRegistration) error {
	if err := validRegistration(t); err != nil {
		return err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return zkrecipes.ErrClosed
	}
	r.topics[t.Topic] = t
	r.mu.Unlock()
	return r.registerTopic(ctx, t)
}

// validRegistration refuses a topic name that is not a single legal ZooKeeper
// node name (protocol.ValidTopic) before any path is built from it.
func validRegistration(t TopicRegistration) error {
	if err := protocol.ValidTopic(t.Topic); err != nil {
		return fmt.Errorf("coordinator: register topic: %w", err)
	}
	return nil
}

// Topics returns the registered topics, sorted.
func (r *Registrar) Topics() []TopicRegistration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]TopicRegistration, 0, len(r.topics))
	for _, t := range r.topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out
}

func (r *Registrar) loop(sub *zkrecipes.Subscription) {
	defer r.wg.Done()
	defer sub.Close()
	for {
		select {
		case <-r.stop:
			return
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			if ev.State == zkrecipes.StateConnected && ev.NewSession {
				r.reregister()
			}
		case <-r.kick:
			r.reregister()
		}
	}
}

// reregister retries with capped, jittered backoff until everything is
// registered, the session is lost again (a new event will come) or Close.
func (r *Registrar) reregister() {
	backoff := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-r.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		start := time.Now()
		err := r.registerAll(ctx)
		cancel()
		if err == nil {
			r.log.Info("broker re-registered in ZooKeeper", "broker_id", r.info.ID, "took", time.Since(start))
			return
		}
		r.log.Warn("broker re-registration failed; retrying", "broker_id", r.info.ID, "err", err, "backoff", backoff)
		select {
		case <-r.stop:
			return
		case <-time.After(backoff + time.Duration(rand.Int64N(int64(backoff)))):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (r *Registrar) registerAll(ctx context.Context) error {
	if err := r.s.WaitConnected(ctx); err != nil {
		return err
	}
	id := r.info.ID
	if err := r.ensurePersistent(ctx, r.paths.BrokerID(id), []byte(r.info.URI)); err != nil {
		return err
	}
	if err := r.ensureEphemeral(ctx, r.paths.BrokerMaster(id), []byte(r.info.URI), true); err != nil {
		return err
	}
	sum := []byte(strconv.FormatUint(uint64(r.info.ConfigChecksum), 10))
	if err := r.ensureEphemeral(ctx, r.paths.BrokerConfigChecksum(id), sum, false); err != nil {
		return err
	}
	for _, t := range r.Topics() {
		if err := r.registerTopic(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

func (r *Registrar) registerTopic(ctx context.Context, t TopicRegistration) error {
	id := r.info.ID
	if err := r.ensureEphemeral(ctx, r.paths.TopicLegacy(t.Topic, id), []byte(strconv.Itoa(t.NumPartitions)), false); err != nil {
		return err
	}
	js, err := json.Marshal(PartitionInfo{NumParts: t.NumPartitions, Broker: MasterName(id)})
	if err != nil {
		return err
	}
	nodes := []struct {
		path string
		on   bool
	}{{r.paths.TopicPub(t.Topic, id), t.AcceptPublish}, {r.paths.TopicSub(t.Topic, id), t.AcceptSubscribe}}
	for _, n := range nodes {
		if !n.on {
			if err := r.s.DeleteIfExists(ctx, n.path); err != nil {
				return err
			}
			continue
		}
		if err := r.ensureEphemeral(ctx, n.path, js, false); err != nil {
			return err
		}
	}
	return nil
}

func (r *Registrar) ensurePersistent(ctx context.Context, p string, data []byte) error {
	_, err := r.s.CreateParents(ctx, p, data, zkrecipes.Persistent)
	if errors.Is(err, zk.ErrNodeExists) {
		_, err = r.s.Set(ctx, p, data, -1)
	}
	return err
}

// ensureEphemeral makes p an ephemeral node of the current session holding data.
// An existing node of another session is replaced, except that for the master
// node a different URI means another live broker has our id.
func (r *Registrar) ensureEphemeral(ctx context.Context, p string, data []byte, master bool) error {
	for attempt := 0; ; attempt++ {
		_, err := r.s.CreateParents(ctx, p, data, zkrecipes.Ephemeral)
		if err == nil || !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
		old, st, err := r.s.Get(ctx, p)
		if errors.Is(err, zk.ErrNoNode) {
			continue // it went away meanwhile
		}
		if err != nil {
			return err
		}
		if st.EphemeralOwner == r.s.ID() {
			if string(old) == string(data) {
				return nil
			}
			_, err := r.s.Set(ctx, p, data, st.Version)
			if errors.Is(err, zk.ErrBadVersion) {
				continue
			}
			return err
		}
		if master && string(old) != string(data) {
			return fmt.Errorf("%w: %s holds %q (session 0x%x), we are %q: give each broker its own brokerId, or stop the other one",
				ErrBrokerIDTaken, p, old, st.EphemeralOwner, data)
		}
		if attempt > 20 {
			return fmt.Errorf("coordinator: %s keeps being re-created by session 0x%x", p, st.EphemeralOwner)
		}
		// A node of an earlier session of this broker: replace it.
		r.log.Info("replacing registration node of an earlier session", "path", p, "old_session", fmt.Sprintf("0x%x", st.EphemeralOwner))
		if err := r.s.Delete(ctx, p, st.Version); err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
			return err
		}
	}
}

// Close deregisters the broker (its ephemeral nodes are deleted at once rather
// than when the session ends) and stops re-registration. Idempotent.
func (r *Registrar) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	topics := make([]TopicRegistration, 0, len(r.topics))
	for _, t := range r.topics {
		topics = append(topics, t)
	}
	r.mu.Unlock()
	close(r.stop)
	r.wg.Wait()
	id := r.info.ID
	var errs []error
	del := func(p string) {
		if _, st, err := r.s.Exists(ctx, p); err == nil && st != nil && st.EphemeralOwner == r.s.ID() {
			if err := r.s.DeleteIfExists(ctx, p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, t := range topics {
		del(r.paths.TopicPub(t.Topic, id))
		del(r.paths.TopicSub(t.Topic, id))
		del(r.paths.TopicLegacy(t.Topic, id))
	}
	del(r.paths.BrokerConfigChecksum(id))
	del(r.paths.BrokerMaster(id))
	return errors.Join(errs...)
}
