package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"

	"github.com/go-zookeeper/zk"

	"github.com/metaq-go/metaq/zkrecipes"
)

// Replication state of one replica set (one brokerId) in ZooKeeper; the
// protocol is in docs/REPLICATION.md, the layout in the package comment.
//
// Who writes what:
//
//   - epoch: changed only by compare-and-set on its version. Bootstrap
//     creates epoch 1 (the configured master, member 0, when the node does
//     not exist yet); BumpEpoch moves E to E+1 for the winner of an election.
//     The in-sync set of the new epoch is written in the same transaction.
//   - isr: written by the master of the epoch through WriteISR, in a
//     transaction that checks the epoch node's version: once another member
//     bumped the epoch, every ISR write of the old master fails with
//     ErrEpochChanged. The set names the master itself and the sync slaves
//     that count for acknowledgements; async slaves are never in it.
//   - election: a zkrecipes.LeaderLatch (predecessor watches, no herd) whose
//     node data is a Candidate. The master of the current epoch keeps its
//     latch for its whole term, so no follower can win while it lives; see
//     Campaign for the longest-log rule.

// ErrNoEpoch means the replica set has no epoch node yet (nobody bootstrapped it).
var ErrNoEpoch = errors.New("coordinator: replica set has no epoch yet")

// ErrEpochChanged means a compare-and-set on the epoch lost: another member
// bumped the epoch (it is master now, or about to be). The caller must stop
// acting as master and re-read the epoch.
var ErrEpochChanged = errors.New("coordinator: the replication epoch moved on; another member is master now")

// Epoch is the content of the epoch node: who is master in which epoch.
type Epoch struct {
	Epoch  int64  `json:"epoch"`
	Master int    `json:"master"`
	URI    string `json:"uri"`
	// Version is the epoch node's ZooKeeper version (the compare-and-set token); not stored.
	Version int32 `json:"-"`
}

// ISR is the content of the isr node: the in-sync set of an epoch.
type ISR struct {
	Epoch  int64 `json:"epoch"`
	InSync []int `json:"inSync"`
	// Version is the isr node's ZooKeeper version; not stored.
	Version int32 `json:"-"`
}

// Contains reports whether member is in the set.
func (i ISR) Contains(member int) bool { return slices.Contains(i.InSync, member) }

// Term is a master's hold on one epoch: the epoch it created and the version
// the epoch node had right after. WriteISR is accepted only while the epoch
// node still has that version.
type Term struct {
	Epoch Epoch
}

// ReplicaSet reads and writes the replication state of one brokerId.
type ReplicaSet struct {
	s     *zkrecipes.Session
	paths Paths
	id    int
	log   *slog.Logger
}

// NewReplicaSet returns the replication state of brokerID under paths.
func NewReplicaSet(s *zkrecipes.Session, paths Paths, brokerID int, log *slog.Logger) *ReplicaSet {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &ReplicaSet{s: s, paths: paths, id: brokerID, log: log}
}

// BrokerID returns the replica set's brokerId.
func (r *ReplicaSet) BrokerID() int { return r.id }

// Paths returns the paths the replica set uses.
func (r *ReplicaSet) Paths() Paths { return r.paths }

// Session returns the ZooKeeper session.
func (r *ReplicaSet) Session() *zkrecipes.Session { return r.s }

func decodeEpoch(p string, data []byte, st *zk.Stat) (Epoch, error) {
	var e Epoch
	if err := json.Unmarshal(data, &e); err != nil {
		return Epoch{}, fmt.Errorf("coordinator: %s holds %q, not an epoch JSON: delete the node only if no member runs (%w)", p, data, err)
	}
	e.Version = st.Version
	return e, nil
}

func decodeISR(p string, data []byte, st *zk.Stat) (ISR, error) {
	var i ISR
	if err := json.Unmarshal(data, &i); err != nil {
		return ISR{}, fmt.Errorf("coordinator: %s holds %q, not an in-sync-set JSON (%w)", p, data, err)
	}
	i.Version = st.Version
	return i, nil
}

// Epoch reads the epoch node; ErrNoEpoch if it does not exist.
func (r *ReplicaSet) Epoch(ctx context.Context) (Epoch, error) {
	p := r.paths.ReplicationEpoch(r.id)
	data, st, err := r.s.Get(ctx, p)
	if errors.Is(err, zk.ErrNoNode) {
		return Epoch{}, ErrNoEpoch
	}
	if err != nil {
		return Epoch{}, err
	}
	return decodeEpoch(p, data, st)
}

// EpochW reads the epoch node and leaves a watch that fires when it changes
// (or, if it does not exist yet — ErrNoEpoch — when it is created).
func (r *ReplicaSet) EpochW(ctx context.Context) (Epoch, <-chan zk.Event, error) {
	p := r.paths.ReplicationEpoch(r.id)
	data, st, ok, ch, err := r.readW(ctx, p)
	switch {
	case err != nil:
		return Epoch{}, nil, err
	case !ok:
		return Epoch{}, ch, ErrNoEpoch
	}
	e, err := decodeEpoch(p, data, st)
	return e, ch, err
}

// readW reads node p and leaves a watch that fires at its next change,
// creation or deletion; ok is false when p does not exist.
func (r *ReplicaSet) readW(ctx context.Context, p string) (data []byte, st *zk.Stat, ok bool, ch <-chan zk.Event, err error) {
	for {
		data, st, ch, err := r.s.GetW(ctx, p)
		if err == nil {
			return data, st, true, ch, nil
		}
		if !errors.Is(err, zk.ErrNoNode) {
			return nil, nil, false, nil, err
		}
		ok, _, ch, err := r.s.ExistsW(ctx, p)
		if err != nil || !ok {
			return nil, nil, false, ch, err
		}
		// Created in between: read it (the exists watch fires once, harmlessly).
	}
}

// ISR reads the isr node; ErrNoEpoch if it does not exist.
func (r *ReplicaSet) ISR(ctx context.Context) (ISR, error) {
	p := r.paths.ReplicationISR(r.id)
	data, st, err := r.s.Get(ctx, p)
	if errors.Is(err, zk.ErrNoNode) {
		return ISR{}, ErrNoEpoch
	}
	if err != nil {
		return ISR{}, err
	}
	return decodeISR(p, data, st)
}

// State reads the epoch and the in-sync set. The set belongs to the epoch
// only if isr.Epoch == epoch.Epoch (they are always written together or by
// the master of that epoch, so a mismatch means a concurrent change: read again).
func (r *ReplicaSet) State(ctx context.Context) (Epoch, ISR, error) {
	for {
		e, err := r.Epoch(ctx)
		if err != nil {
			return Epoch{}, ISR{}, err
		}
		i, err := r.ISR(ctx)
		if err != nil {
			return Epoch{}, ISR{}, err
		}
		e2, err := r.Epoch(ctx)
		if err != nil {
			return Epoch{}, ISR{}, err
		}
		if e2.Version == e.Version {
			return e, i, nil
		}
	}
}

func normalise(inSync []int) []int {
	out := slices.Clone(inSync)
	sort.Ints(out)
	return slices.Compact(out)
}

// Bootstrap creates epoch 1 naming member (the configured master) with the
// in-sync set {member}. It fails with ErrEpochChanged if the epoch node exists.
func (r *ReplicaSet) Bootstrap(ctx context.Context, member int, uri string) (Term, error) {
	if err := r.s.EnsurePath(ctx, r.paths.Replication(r.id)); err != nil {
		return Term{}, err
	}
	e := Epoch{Epoch: 1, Master: member, URI: uri}
	ed, _ := json.Marshal(e)
	id, _ := json.Marshal(ISR{Epoch: 1, InSync: []int{member}})
	_, err := r.s.Multi(ctx,
		&zk.CreateRequest{Path: r.paths.ReplicationEpoch(r.id), Data: ed},
		&zk.CreateRequest{Path: r.paths.ReplicationISR(r.id), Data: id})
	if err != nil {
		if errors.Is(err, zk.ErrNodeExists) {
			return Term{}, fmt.Errorf("%w: bootstrap of broker %d: the epoch exists already", ErrEpochChanged, r.id)
		}
		return r.confirm(ctx, e, err)
	}
	return r.confirm(ctx, e, nil)
}

// BumpEpoch moves the epoch from prev (as read, with its Version) to
// prev.Epoch+1 naming member at uri, and writes the in-sync set of the new
// epoch in the same transaction. It fails with ErrEpochChanged if the epoch
// node changed since prev was read. The caller must hold the election (see
// Campaign) so that losing the race is the exception.
func (r *ReplicaSet) BumpEpoch(ctx context.Context, prev Epoch, member int, uri string, inSync []int) (Term, error) {
	e := Epoch{Epoch: prev.Epoch + 1, Master: member, URI: uri}
	ed, _ := json.Marshal(e)
	id, _ := json.Marshal(ISR{Epoch: e.Epoch, InSync: normalise(inSync)})
	_, err := r.s.Multi(ctx,
		&zk.SetDataRequest{Path: r.paths.ReplicationEpoch(r.id), Data: ed, Version: prev.Version},
		&zk.SetDataRequest{Path: r.paths.ReplicationISR(r.id), Data: id, Version: -1})
	if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode) {
		return Term{}, fmt.Errorf("%w: broker %d epoch %d is no longer at version %d", ErrEpochChanged, r.id, prev.Epoch, prev.Version)
	}
	return r.confirm(ctx, e, err)
}

// confirm turns the outcome of an epoch transaction into a Term. After an
// error whose outcome is unknown (a lost reply), it reads the node: the
// transaction happened iff the node now holds exactly what we wrote (only
// the holder of the election writes it, so nobody else writes these bytes).
func (r *ReplicaSet) confirm(ctx context.Context, want Epoch, err error) (Term, error) {
	if err != nil && !zkrecipes.IsRetriable(err) {
		return Term{}, err
	}
	got, rerr := r.Epoch(ctx)
	if rerr != nil {
		if err != nil {
			return Term{}, fmt.Errorf("%w (and reading the epoch back: %v)", err, rerr)
		}
		return Term{}, rerr
	}
	if got.Epoch != want.Epoch || got.Master != want.Master || got.URI != want.URI {
		if err != nil {
			return Term{}, err
		}
		return Term{}, fmt.Errorf("%w: broker %d epoch is %d (master %d) right after we wrote %d", ErrEpochChanged, r.id, got.Epoch, got.Master, want.Epoch)
	}
	return Term{Epoch: got}, nil
}

// WriteISR writes the in-sync set of term's epoch, refused with
// ErrEpochChanged once the epoch node is no longer what term created
// (another member bumped it: this master must step down).
func (r *ReplicaSet) WriteISR(ctx context.Context, term Term, inSync []int) error {
	data, _ := json.Marshal(ISR{Epoch: term.Epoch.Epoch, InSync: normalise(inSync)})
	_, err := r.s.Multi(ctx,
		&zk.CheckVersionRequest{Path: r.paths.ReplicationEpoch(r.id), Version: term.Epoch.Version},
		&zk.SetDataRequest{Path: r.paths.ReplicationISR(r.id), Data: data, Version: -1})
	if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("%w: broker %d epoch %d: in-sync set %v not written", ErrEpochChanged, r.id, term.Epoch.Epoch, inSync)
	}
	return err
}

// MasterW reads the master node of the replica set: its URI and whether it
// exists, leaving a watch that fires when it is created, changed or deleted.
func (r *ReplicaSet) MasterW(ctx context.Context) (uri string, present bool, ch <-chan zk.Event, err error) {
	data, _, present, ch, err := r.readW(ctx, r.paths.BrokerMaster(r.id))
	return string(data), present, ch, err
}

// Members returns the live registrations of the replica set: member id →
// URI for every slave<N> node, plus "master" under the key -1 when present.
func (r *ReplicaSet) Members(ctx context.Context) (map[int]string, error) {
	kids, _, err := r.s.Children(ctx, r.paths.BrokerID(r.id))
	if errors.Is(err, zk.ErrNoNode) {
		return map[int]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	for _, k := range kids {
		n, ok := ParseSlaveNodeName(k)
		key := n
		switch {
		case ok:
		case k == "master":
			key = -1
		default:
			continue
		}
		data, _, err := r.s.Get(ctx, r.paths.BrokerID(r.id)+"/"+k)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[key] = string(data)
	}
	return out, nil
}

// NewSlaveRegistrar returns a Registrar for follower member of info.ID: it
// keeps /brokers/ids/<id>/slave<member> (data info.URI) registered across
// session expiries exactly like the master registration (a node of an earlier
// session of the same URI is replaced, a live one with another URI is
// ErrBrokerIDTaken), and registers no topic and no checksum node.
func NewSlaveRegistrar(s *zkrecipes.Session, paths Paths, info BrokerInfo, member int, log *slog.Logger) *Registrar {
	r := NewRegistrar(s, paths, info, log)
	r.self = paths.BrokerSlave(info.ID, member)
	r.slave = true
	return r
}
