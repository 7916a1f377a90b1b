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
	// AcceptedTopics are the topics the broker takes without a registration
	// yet (wildcard sections, autoCreateTopics), published under
	// brokers/metaq/accept/<id> for producers (accept.go); none = no node.
	AcceptedTopics []TopicPattern
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
//
// Restart within the session timeout: at Start, nodes of an earlier session
// are all deleted first, then the registrar waits for a sync round-trip and
// the stale-node grace (WithStaleNodeGrace) before creating its own, so a
// client that keeps one child watch on a topic's broker list (MetaQ's
// Python producer) re-reads the list while this broker is absent
// and drops its dead connection instead of keeping it for ever.
//
// The legacy node topics/<topic>/<id>-m is read by clients that may publish
// or subscribe (Python/Ruby producers, Java clients before 1.4.3), so it is
// registered only for a topic that accepts both: no client is routed to a
// broker that refuses it (MetaQ registers it always and enforces neither).
type Registrar struct {
	s     *zkrecipes.Session
	paths Paths
	info  BrokerInfo
	log   *slog.Logger
	grace time.Duration // see WithStaleNodeGrace
	// takeover: the caller won the replica set's election (WithTakeover), so
	// another session's master node is a predecessor's, not a rival's.
	takeover bool
	// self is the broker's own node: the master node, or slave<N> for a
	// follower (NewSlaveRegistrar), which registers nothing else.
	self  string
	slave bool

	mu     sync.Mutex // guards topics and closed
	topics map[string]TopicRegistration
	closed bool

	kick chan struct{} // asks the loop to re-register
	stop chan struct{}
	wg   sync.WaitGroup
}

// DefaultStaleNodeGrace is the default of WithStaleNodeGrace.
const DefaultStaleNodeGrace = 2 * time.Second

// RegistrarOption tunes a Registrar.
type RegistrarOption func(*Registrar)

// WithStaleNodeGrace sets how long Start waits, after deleting the nodes an
// earlier session of this broker left (a crash and restart within the
// session timeout) and a sync round-trip, before creating its own: the time
// a client's child watcher needs to fire and re-read the broker list, so it
// sees this broker gone and reconnects. 0 = no wait (watchers then may
// re-read the list after the new nodes exist and see no change). Default
// DefaultStaleNodeGrace.
func WithStaleNodeGrace(d time.Duration) RegistrarOption {
	return func(r *Registrar) { r.grace = max(d, 0) }
}

// WithTakeover is for a master chosen by the replication failover driver,
// whose epoch fences the old master: a master node held by another session
// is the former master's and is deleted like a stale node, instead of
// refusing to start with ErrBrokerIDTaken.
func WithTakeover() RegistrarOption {
	return func(r *Registrar) { r.takeover = true }
}

// NewRegistrar prepares a registration; nothing is written before Start.
func NewRegistrar(s *zkrecipes.Session, paths Paths, info BrokerInfo, log *slog.Logger, opts ...RegistrarOption) *Registrar {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Registrar{s: s, paths: paths, info: info, log: log, grace: DefaultStaleNodeGrace, self: paths.BrokerMaster(info.ID),
		topics: map[string]TopicRegistration{}, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	for _, o := range opts {
		o(r)
	}
	return r
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
	if err := r.clearStale(ctx); err != nil {
		return err
	}
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
	if r.slave {
		return r.ensureEphemeral(ctx, r.self, []byte(r.info.URI), true)
	}
	if err := r.ensurePersistent(ctx, r.paths.BrokerID(id), []byte(r.info.URI)); err != nil {
		return err
	}
	if err := r.ensureEphemeral(ctx, r.self, []byte(r.info.URI), true); err != nil {
		return err
	}
	sum := []byte(strconv.FormatUint(uint64(r.info.ConfigChecksum), 10))
	if err := r.ensureEphemeral(ctx, r.paths.BrokerConfigChecksum(id), sum, false); err != nil {
		return err
	}
	if err := r.registerAccepts(ctx); err != nil {
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
	if r.slave {
		return nil // topic nodes belong to the current master only
	}
	id := r.info.ID
	js, err := json.Marshal(PartitionInfo{NumParts: t.NumPartitions, Broker: MasterName(id)})
	if err != nil {
		return err
	}
	nodes := []struct {
		path string
		data []byte
		on   bool
	}{
		{r.paths.TopicLegacy(t.Topic, id), []byte(strconv.Itoa(t.NumPartitions)), t.AcceptPublish && t.AcceptSubscribe},
		{r.paths.TopicPub(t.Topic, id), js, t.AcceptPublish},
		{r.paths.TopicSub(t.Topic, id), js, t.AcceptSubscribe},
	}
	for _, n := range nodes {
		if !n.on {
			if err := r.s.DeleteIfExists(ctx, n.path); err != nil {
				return err
			}
			continue
		}
		if err := r.ensureEphemeral(ctx, n.path, n.data, false); err != nil {
			return err
		}
	}
	return nil
}

// ephemeralPaths lists every ephemeral node this broker may own: master,
// config checksum, then the three nodes of each topic.
func (r *Registrar) ephemeralPaths() []string {
	id := r.info.ID
	if r.slave {
		return []string{r.self}
	}
	out := []string{r.paths.BrokerMaster(id), r.paths.BrokerConfigChecksum(id)}
	for _, t := range r.Topics() {
		out = append(out, r.paths.TopicLegacy(t.Topic, id), r.paths.TopicPub(t.Topic, id), r.paths.TopicSub(t.Topic, id))
	}
	return out
}

// clearStale deletes the nodes an earlier session of this broker left (kill
// -9 and restart within the session timeout), waits until the deletes are
// visible to this session's server (a sync round-trip) and then for the
// stale-node grace, so clients watching the broker lists see the old
// registration disappear before the new one appears. A master node of
// another live broker (different URI) is ErrBrokerIDTaken and nothing is
// deleted.
func (r *Registrar) clearStale(ctx context.Context) error {
	if err := r.s.WaitConnected(ctx); err != nil {
		return err
	}
	self := r.self // the master node, or a follower's slave<N>
	data, st, err := r.s.Get(ctx, self)
	switch {
	case r.takeover:
		// Chosen by the failover driver: the old master's node is replaced.
	case errors.Is(err, zk.ErrNoNode):
	case err != nil:
		return err
	case st.EphemeralOwner != r.s.ID() && string(data) != r.info.URI:
		return fmt.Errorf("%w: %s holds %q (session 0x%x), we are %q: give each broker its own brokerId, or stop the other one",
			ErrBrokerIDTaken, self, data, st.EphemeralOwner, r.info.URI)
	}
	var deleted []string
	for _, p := range r.ephemeralPaths() {
		_, st, err := r.s.Exists(ctx, p)
		if err != nil {
			return err
		}
		if st == nil || st.EphemeralOwner == 0 || st.EphemeralOwner == r.s.ID() {
			continue
		}
		if err := r.s.Delete(ctx, p, st.Version); err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
			return err
		}
		deleted = append(deleted, p)
	}
	if len(deleted) == 0 {
		return nil
	}
	for _, p := range deleted {
		if err := r.s.Sync(ctx, p); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
	}
	r.log.Info("deleted the registration of an earlier session of this broker (restart within the session timeout); waiting for watchers before registering again",
		"nodes", len(deleted), "grace", r.grace)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(r.grace):
		return nil
	}
}

func (r *Registrar) ensurePersistent(ctx context.Context, p string, data []byte) error {
	_, err := r.s.CreateParents(ctx, p, data, zkrecipes.Persistent)
	if errors.Is(err, zk.ErrNodeExists) {
		_, err = r.s.Set(ctx, p, data, -1)
	}
	return err
}

// ensureEphemeral makes p an ephemeral node of the current session holding data.
// An existing node of another session is replaced, except that for the
// broker's own node (master or slave<N>) a different URI means another live
// broker has our id.
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
	del(r.self)
	if !r.slave {
		del(r.paths.BrokerAccepts(id))
		del(r.paths.BrokerConfigChecksum(id))
		errs = append(errs, r.deleteIDNode(ctx))
	}
	return errors.Join(errs...)
}

// deleteIDNode removes the persistent ids/<id> node (which holds the master
// URI for old clients) when it still holds our URI, as MetaQ's
// BrokerZooKeeper.unregisterBrokerInZk does; if it still has children (a
// slave's nodes) it is emptied instead, like MetaQ, so no tool or client
// sees a dead broker.
func (r *Registrar) deleteIDNode(ctx context.Context) error {
	p := r.paths.BrokerID(r.info.ID)
	data, st, err := r.s.Get(ctx, p)
	if errors.Is(err, zk.ErrNoNode) || (err == nil && string(data) != r.info.URI) {
		return nil // gone, or another broker with our id took over
	}
	if err != nil {
		return err
	}
	err = r.s.Delete(ctx, p, st.Version)
	if errors.Is(err, zk.ErrNotEmpty) {
		_, err = r.s.Set(ctx, p, nil, st.Version)
	}
	if errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrBadVersion) {
		return nil // changed meanwhile: no longer ours to remove
	}
	return err
}
