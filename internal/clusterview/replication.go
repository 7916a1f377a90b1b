package clusterview

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
)

// ReplicaSet is the replication state of one brokerId: what ZooKeeper
// knows (epoch, in-sync set, registrations, a pending switchover) and, per
// member, what the master's `stats replication` says.
type ReplicaSet struct {
	BrokerID  int                    `json:"broker_id"`
	Epoch     int64                  `json:"epoch"`  // 0: no epoch node (replication never started)
	Master    int                    `json:"master"` // member id named by the epoch; -1 without epoch
	InSync    []int                  `json:"in_sync"`
	Promotion *coordinator.Promotion `json:"promotion,omitempty"`
	Members   []ReplicaMember        `json:"members"`
	Error     string                 `json:"error,omitempty"` // the master's stats could not be read
}

// ReplicaMember is one member of a replica set. Stats fields are nil when unknown.
type ReplicaMember struct {
	Member     int    `json:"member"` // -1: a master node whose member is unknown (epoch names another URI)
	URI        string `json:"uri"`
	Role       string `json:"role"` // master, follower
	Mode       string `json:"mode,omitempty"`
	InSync     bool   `json:"in_sync"`
	AckedBytes *int64 `json:"acked_bytes,omitempty"`
	LagBytes   *int64 `json:"lag_bytes,omitempty"`
	LagMs      *int64 `json:"lag_ms,omitempty"`
}

// followerStats is one `slave <member> mode <m> in_sync <b> acked_bytes <n> lag_bytes <n> lag_ms <n>` line.
type followerStats struct {
	mode                  string
	inSync                bool
	acked, lagBytes, lagM int64
}

// parseReplicationStats reads the per-follower lines of a master's `stats replication`.
func parseReplicationStats(lines map[string][]string) map[int]followerStats {
	out := map[int]followerStats{}
	for _, v := range lines["slave"] {
		f := strings.Fields(v)
		if len(f) < 1 || len(f)%2 != 1 {
			continue
		}
		m, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		var st followerStats
		for i := 1; i+1 < len(f); i += 2 {
			n, _ := strconv.ParseInt(f[i+1], 10, 64)
			switch f[i] {
			case "mode":
				st.mode = f[i+1]
			case "in_sync":
				st.inSync = f[i+1] == "true"
			case "acked_bytes":
				st.acked = n
			case "lag_bytes":
				st.lagBytes = n
			case "lag_ms":
				st.lagM = n
			}
		}
		out[m] = st
	}
	return out
}

// ReadReplication reads the replication state of every broker id that has
// one (an epoch node or slave registrations); the stats come from each
// registered master over internal/conn.
func ReadReplication(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, brokers []Broker) ([]ReplicaSet, error) {
	var out []ReplicaSet
	var masters []Broker
	for _, br := range brokers {
		rep, ok, err := readReplicaSet(ctx, s, p, br.ID)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, rep)
			masters = append(masters, br)
		}
	}
	stats := CollectLines(ctx, masters, "replication")
	for i := range out {
		r, ok := stats[out[i].BrokerID]
		if !ok {
			continue // no master registered
		}
		if r.Err != nil {
			out[i].Error = r.Err.Error()
			continue
		}
		byKey := map[string][]string{}
		for _, l := range r.Lines {
			byKey[l.Key] = append(byKey[l.Key], l.Value)
		}
		fs := parseReplicationStats(byKey)
		for j := range out[i].Members {
			m := &out[i].Members[j]
			if st, ok := fs[m.Member]; ok && m.Role == "follower" {
				m.Mode, m.InSync = st.mode, st.inSync
				m.AckedBytes, m.LagBytes, m.LagMs = &st.acked, &st.lagBytes, &st.lagM
			}
		}
	}
	return out, nil
}

// readReplicaSet reads one broker id's replication nodes; ok is false when it has none.
func readReplicaSet(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, id int) (ReplicaSet, bool, error) {
	rs := coordinator.NewReplicaSet(s, p, id, nil)
	rep := ReplicaSet{BrokerID: id, Master: -1, InSync: []int{}, Members: []ReplicaMember{}}
	e, isr, err := rs.State(ctx)
	switch {
	case errors.Is(err, coordinator.ErrNoEpoch):
	case err != nil:
		return rep, false, fmt.Errorf("broker %d: read the replication state: %w", id, err)
	default:
		rep.Epoch, rep.Master = e.Epoch, e.Master
		if isr.Epoch == e.Epoch {
			rep.InSync = isr.InSync
		}
	}
	members, err := rs.Members(ctx)
	if err != nil {
		return rep, false, fmt.Errorf("broker %d: list members: %w", id, err)
	}
	if rep.Epoch == 0 && len(members) <= 1 {
		if _, master := members[-1]; master || len(members) == 0 {
			return rep, false, nil // a plain broker without replication
		}
	}
	if pr, ok, _, err := rs.PromotionW(ctx); err == nil && ok {
		rep.Promotion = &pr
	}
	ids := make([]int, 0, len(members))
	for m := range members {
		ids = append(ids, m)
	}
	sort.Ints(ids)
	for _, m := range ids {
		rm := ReplicaMember{Member: m, URI: members[m], Role: "follower"}
		if m == -1 {
			rm.Role = "master"
			if rep.Epoch > 0 && e.URI == members[m] {
				rm.Member = e.Master
			}
		}
		rm.InSync = containsInt(rep.InSync, rm.Member)
		rep.Members = append(rep.Members, rm)
	}
	sort.SliceStable(rep.Members, func(i, j int) bool {
		if (rep.Members[i].Role == "master") != (rep.Members[j].Role == "master") {
			return rep.Members[i].Role == "master"
		}
		return rep.Members[i].Member < rep.Members[j].Member
	})
	return rep, true, nil
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// PromoteResult is the output of `metaq cluster promote`.
type PromoteResult struct {
	BrokerID int    `json:"broker_id"`
	Member   int    `json:"member"`
	Epoch    int64  `json:"epoch"`  // the epoch the member leads (0 with --wait 0)
	Status   string `json:"status"` // requested, done
}

// Promote checks what it can, writes the request, and waits for the outcome.
func Promote(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, id, member int, wait time.Duration) (PromoteResult, error) {
	rs := coordinator.NewReplicaSet(s, p, id, nil)
	res := PromoteResult{BrokerID: id, Member: member, Status: "requested"}
	e, isr, err := rs.State(ctx)
	if errors.Is(err, coordinator.ErrNoEpoch) {
		return res, fmt.Errorf("broker %d has no replication epoch in ZooKeeper under %s: is it a replicated broker id, and is --zk-root right?", id, p.Root)
	}
	if err != nil {
		return res, err
	}
	if e.Master == member {
		res.Epoch, res.Status = e.Epoch, "done"
		return res, nil
	}
	if isr.Epoch != e.Epoch || !isr.Contains(member) {
		return res, fmt.Errorf("member %d is not in the in-sync set of broker %d (epoch %d, in sync %v): wait until it has caught up (see `metaq cluster`)", member, id, e.Epoch, isr.InSync)
	}
	live, err := rs.Members(ctx)
	if err != nil {
		return res, err
	}
	if _, ok := live[member]; !ok {
		return res, fmt.Errorf("member %d of broker %d is not registered (no %s): is it running?", member, id, p.BrokerSlave(id, member))
	}
	if err := rs.RequestPromotion(ctx, member); err != nil {
		return res, fmt.Errorf("write the switchover request: %w", err)
	}
	if wait <= 0 {
		return res, nil
	}
	return awaitPromotion(ctx, rs, res, wait)
}

// awaitPromotion waits until the member leads (the epoch names it and the
// master node holds its URI) or the master refuses.
func awaitPromotion(ctx context.Context, rs *coordinator.ReplicaSet, res PromoteResult, wait time.Duration) (PromoteResult, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		e, ech, err := rs.EpochW(ctx)
		if err != nil {
			return res, err
		}
		uri, present, mch, err := rs.MasterW(ctx)
		if err != nil {
			return res, err
		}
		if e.Master == res.Member && present && uri == e.URI {
			res.Epoch, res.Status = e.Epoch, "done"
			return res, nil
		}
		pr, ok, pch, err := rs.PromotionW(ctx)
		if err != nil {
			return res, err
		}
		if ok && pr.State == coordinator.PromotionRefused && pr.Member == res.Member {
			_ = rs.DeletePromotion(ctx, pr.Version)
			return res, fmt.Errorf("broker %d: the master refused the switchover to member %d: %s", res.BrokerID, res.Member, pr.Reason)
		}
		select {
		case <-ech:
		case <-mch:
		case <-pch:
		case <-ctx.Done():
			return res, fmt.Errorf("broker %d: member %d is not master after %v (the request stays; is the master's failover driver running? see `metaq cluster`): %w",
				res.BrokerID, res.Member, wait, ctx.Err())
		}
	}
}
