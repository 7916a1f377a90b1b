package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"

	"github.com/metaq-go/metaq/zkrecipes"
)

// Promotion states (the "state" field of the promote node).
const (
	// PromotionRequested: an operator asked for the switchover (metaq cluster promote).
	PromotionRequested = "requested"
	// PromotionReleased: the master stopped taking puts, saw the target
	// caught up and gave the election up for the target to win epoch Epoch+1.
	PromotionReleased = "released"
	// PromotionRefused: the master refused; Reason says why.
	PromotionRefused = "refused"
)

// Promotion is the content of the promote node: a planned switchover of the
// replica set's mastership to Member (docs/REPLICATION.md "Planned switchover").
type Promotion struct {
	Member int    `json:"member"`
	State  string `json:"state"`
	Epoch  int64  `json:"epoch,omitempty"` // the epoch the master released (state released)
	Reason string `json:"reason,omitempty"`
	// Version is the node's ZooKeeper version; not stored.
	Version int32 `json:"-"`
}

// RequestPromotion asks the master to hand its mastership over to member;
// it replaces any earlier request.
func (r *ReplicaSet) RequestPromotion(ctx context.Context, member int) error {
	data, _ := json.Marshal(Promotion{Member: member, State: PromotionRequested})
	p := r.paths.ReplicationPromote(r.id)
	_, err := r.s.CreateParents(ctx, p, data, zkrecipes.Persistent)
	if errors.Is(err, zk.ErrNodeExists) {
		_, err = r.s.Set(ctx, p, data, -1)
	}
	return err
}

// PromotionW reads the promote node (ok false if there is none) and leaves a
// watch that fires when it is created, changed or deleted.
func (r *ReplicaSet) PromotionW(ctx context.Context) (Promotion, bool, <-chan zk.Event, error) {
	p := r.paths.ReplicationPromote(r.id)
	data, st, ok, ch, err := r.readW(ctx, p)
	if err != nil || !ok {
		return Promotion{}, false, ch, err
	}
	var pr Promotion
	if err := json.Unmarshal(data, &pr); err != nil {
		return Promotion{}, false, ch, fmt.Errorf("coordinator: %s holds %q, not a promotion request: delete it (%w)", p, data, err)
	}
	pr.Version = st.Version
	return pr, true, ch, nil
}

// UpdatePromotion replaces the promote node's content if it still has
// p.Version (zkrecipes.ErrBadVersion / ErrNoNode otherwise: the request changed).
func (r *ReplicaSet) UpdatePromotion(ctx context.Context, p Promotion) error {
	data, _ := json.Marshal(p)
	_, err := r.s.Set(ctx, r.paths.ReplicationPromote(r.id), data, p.Version)
	return err
}

// DeletePromotion deletes the promote node if it still has version (-1: any).
// A node that is gone already is not an error.
func (r *ReplicaSet) DeletePromotion(ctx context.Context, version int32) error {
	err := r.s.Delete(ctx, r.paths.ReplicationPromote(r.id), version)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return err
}
