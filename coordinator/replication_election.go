package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/metaq-go/metaq/zkrecipes"
)

// Candidate is what a member announces in the election: the data of its
// latch node. LogEnd is the sum of its partitions' durable ends when it joined.
type Candidate struct {
	Member int   `json:"member"`
	LogEnd int64 `json:"logEnd"`
}

// Better reports whether c should win over o: the longer log wins, a tie goes
// to the lower member id (a total order, so yielding always terminates).
func (c Candidate) Better(o Candidate) bool {
	if c.LogEnd != o.LogEnd {
		return c.LogEnd > o.LogEnd
	}
	return c.Member < o.Member
}

// Best returns the best candidate of cs (zero value and false if cs is empty).
func Best(cs []Candidate) (Candidate, bool) {
	if len(cs) == 0 {
		return Candidate{}, false
	}
	best := cs[0]
	for _, c := range cs[1:] {
		if c.Better(best) {
			best = c
		}
	}
	return best, true
}

// DefaultCampaignGrace is how long the holder of the election waits for the
// other live in-sync members to join before it compares log ends.
const DefaultCampaignGrace = time.Second

// CampaignOptions tune Campaign.
type CampaignOptions struct {
	// Grace bounds the wait for the other live in-sync members (default
	// DefaultCampaignGrace). A member that joins later than this may lose to
	// a shorter log; that is safe (every in-sync member holds every
	// acknowledged message) but may cost unacknowledged messages.
	Grace time.Duration
	// Chosen: the candidate was picked by a planned switchover (its master
	// released the election to it): it neither waits for nor yields to the
	// others, it only needs to head the line.
	Chosen bool
}

// Leadership is a won campaign: the member holds the election (and so no
// other member can win) until Close or until its session ends; Lost is
// closed then.
type Leadership struct {
	latch *zkrecipes.LeaderLatch
	lost  <-chan struct{}
	// Candidates are the candidates seen when the campaign was won (including the winner).
	Candidates []Candidate
}

// Lost is closed when the leadership ends (session loss or Close).
func (l *Leadership) Lost() <-chan struct{} { return l.lost }

// Close gives the election up; the next candidate in line gets it.
func (l *Leadership) Close(ctx context.Context) error { return l.latch.Close(ctx) }

// Campaign takes part in the replica set's election as c and returns once c
// holds the election and is the best candidate present.
//
// The election is a zkrecipes.LeaderLatch under ReplicationElection: every
// candidate watches only its predecessor, so the head of the line is woken
// alone. The head then decides:
//
//  1. It waits, up to opts.Grace, until every other member that is in the
//     in-sync set of the newest epoch AND has a live registration (slave<N>)
//     has joined — they all see the master vanish at the same moment, so in
//     practice they are there at once. Only the head watches the election
//     directory while it waits.
//  2. It reads every candidate's data. If another candidate is Better (longer
//     log, then lower member id), it yields: it leaves the line and joins again
//     at the back, so the better candidate comes to the head and wins in turn.
//  3. Otherwise it returns, still holding the election.
//
// The caller then checks eligibility against the epoch it read and bumps the
// epoch by compare-and-set (BumpEpoch): holding the election serialises the
// winners, the compare-and-set makes a stale winner harmless. The master keeps
// its Leadership for its whole term. Campaign returns ctx's error when ctx ends.
func (r *ReplicaSet) Campaign(ctx context.Context, c Candidate, opts CampaignOptions) (*Leadership, error) {
	if opts.Grace <= 0 {
		opts.Grace = DefaultCampaignGrace
	}
	data, _ := json.Marshal(c)
	dir := r.paths.ReplicationElection(r.id)
	for {
		latch, err := zkrecipes.NewLeaderLatch(r.s, dir, string(data))
		if err != nil {
			return nil, err
		}
		if err := latch.Start(ctx); err != nil {
			return nil, fmt.Errorf("coordinator: broker %d: join the election: %w", r.id, err)
		}
		lead, err := r.head(ctx, latch, c, opts)
		if lead != nil {
			return lead, nil
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.s.Timeout())
		_ = latch.Close(cctx)
		cancel()
		if err != nil {
			return nil, err
		}
	}
}

// head waits for c to head the line and decides: a Leadership if c wins,
// (nil, nil) if c must yield to a better candidate, or an error.
func (r *ReplicaSet) head(ctx context.Context, latch *zkrecipes.LeaderLatch, c Candidate, opts CampaignOptions) (*Leadership, error) {
	if err := latch.AwaitLeadership(ctx); err != nil {
		return nil, err
	}
	lost := latch.Leadership()
	if opts.Chosen {
		cands, err := r.Candidates(ctx)
		if err != nil {
			return nil, err
		}
		return &Leadership{latch: latch, lost: lost, Candidates: cands}, nil
	}
	cands, err := r.awaitCandidates(ctx, c, opts.Grace)
	if err != nil {
		return nil, err
	}
	best, _ := Best(cands)
	if best.Member != c.Member {
		r.log.Info("yielding the election to a longer log", "broker_id", r.id,
			"member", c.Member, "log_end", c.LogEnd, "better", best.Member, "better_log_end", best.LogEnd)
		return nil, nil
	}
	select {
	case <-lost:
		return nil, nil // lost while deciding: join again
	default:
	}
	return &Leadership{latch: latch, lost: lost, Candidates: cands}, nil
}

// awaitCandidates returns the candidates in the election (c included) once
// every live in-sync member has joined or grace has passed.
func (r *ReplicaSet) awaitCandidates(ctx context.Context, c Candidate, grace time.Duration) ([]Candidate, error) {
	want, err := r.expectedCandidates(ctx, c.Member)
	if err != nil {
		return nil, err
	}
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	for {
		cands, ch, err := r.candidatesW(ctx)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(cands, func(x Candidate) bool { return x.Member == c.Member }) {
			cands = append(cands, c)
		}
		missing := slices.DeleteFunc(slices.Clone(want), func(m int) bool {
			return slices.ContainsFunc(cands, func(x Candidate) bool { return x.Member == m })
		})
		if len(missing) == 0 {
			return cands, nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			r.log.Info("election: in-sync members did not join in time; deciding without them",
				"broker_id", r.id, "member", c.Member, "missing", missing, "grace", grace)
			cands, _, err := r.candidatesW(ctx)
			if err != nil {
				return nil, err
			}
			if !slices.ContainsFunc(cands, func(x Candidate) bool { return x.Member == c.Member }) {
				cands = append(cands, c)
			}
			return cands, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// expectedCandidates are the members other than self that are in the
// in-sync set of the newest epoch and have a live slave<N> registration.
func (r *ReplicaSet) expectedCandidates(ctx context.Context, self int) ([]int, error) {
	isr, err := r.ISR(ctx)
	if errors.Is(err, ErrNoEpoch) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	live, err := r.Members(ctx)
	if err != nil {
		return nil, err
	}
	var want []int
	for _, m := range isr.InSync {
		if _, ok := live[m]; ok && m != self {
			want = append(want, m)
		}
	}
	return want, nil
}

// Candidates returns the candidates now in the election, in line order.
func (r *ReplicaSet) Candidates(ctx context.Context) ([]Candidate, error) {
	cands, _, err := r.candidates(ctx, false)
	return cands, err
}

func (r *ReplicaSet) candidatesW(ctx context.Context) ([]Candidate, <-chan zk.Event, error) {
	return r.candidates(ctx, true)
}

func (r *ReplicaSet) candidates(ctx context.Context, watch bool) ([]Candidate, <-chan zk.Event, error) {
	dir := r.paths.ReplicationElection(r.id)
	var kids []string
	var ch <-chan zk.Event
	var err error
	if watch {
		kids, _, ch, err = r.s.ChildrenW(ctx, dir)
	} else {
		kids, _, err = r.s.Children(ctx, dir)
	}
	if errors.Is(err, zk.ErrNoNode) {
		return nil, ch, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var out []Candidate
	for _, k := range zkrecipes.SortBySequence(kids) {
		data, _, err := r.s.Get(ctx, dir+"/"+k)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		var c Candidate
		if json.Unmarshal(data, &c) != nil {
			continue // not one of ours: ignore
		}
		out = append(out, c)
	}
	return out, ch, nil
}
