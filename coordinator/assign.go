package coordinator

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Partition is one partition of a topic: "<brokerId>-<partition>" in ZooKeeper.
type Partition struct {
	BrokerID  int
	Partition int
}

// String returns "<brokerId>-<partition>".
func (p Partition) String() string { return PartitionName(p.BrokerID, p.Partition) }

// MarshalText encodes the partition as "<brokerId>-<partition>".
func (p Partition) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText decodes "<brokerId>-<partition>".
func (p *Partition) UnmarshalText(b []byte) error {
	bid, part, err := ParsePartitionName(string(b))
	if err != nil {
		return err
	}
	*p = Partition{BrokerID: bid, Partition: part}
	return nil
}

// Compare orders partitions by broker id, then partition number (MetaQ's order).
func (p Partition) Compare(q Partition) int {
	return cmp.Or(cmp.Compare(p.BrokerID, q.BrokerID), cmp.Compare(p.Partition, q.Partition))
}

// TopicPartition names a partition of a topic.
type TopicPartition struct {
	Topic string
	Partition
}

// String returns "<topic>/<brokerId>-<partition>".
func (tp TopicPartition) String() string { return tp.Topic + "/" + tp.Partition.String() }

// Compare orders by topic, then partition.
func (tp TopicPartition) Compare(o TopicPartition) int {
	return cmp.Or(strings.Compare(tp.Topic, o.Topic), tp.Partition.Compare(o.Partition))
}

// Member is one group member as the assignor sees it.
type Member struct {
	ID         string   // unique per member (the key of assign/<memberId>)
	InstanceID string   // optional stable identity for static membership
	Topics     []string // subscribed topics
	// Reserved marks a departed static member inside its grace period: it
	// keeps (up to its fair share) what it held, receives nothing new, and
	// whoever rejoins with the same InstanceID inherits its partitions.
	Reserved bool
}

// MemberAssignment is what one member owns.
type MemberAssignment struct {
	InstanceID string                 `json:"instanceId,omitempty"`
	Topics     map[string][]Partition `json:"topics"`
}

// Count returns how many partitions the member holds over all topics.
func (m MemberAssignment) Count() int {
	n := 0
	for _, ps := range m.Topics {
		n += len(ps)
	}
	return n
}

// Equal reports whether both hold exactly the same partitions.
func (m MemberAssignment) Equal(o MemberAssignment) bool {
	if m.Count() != o.Count() {
		return false
	}
	for t, ps := range m.Topics {
		if !slices.Equal(ps, o.Topics[t]) {
			return false
		}
	}
	return true
}

// Assignment maps member id to what it owns. Members that own nothing may be absent.
type Assignment map[string]MemberAssignment

// Owners returns partition → member id.
func (a Assignment) Owners() map[TopicPartition]string {
	out := map[TopicPartition]string{}
	for id, ma := range a {
		for t, ps := range ma.Topics {
			for _, p := range ps {
				out[TopicPartition{t, p}] = id
			}
		}
	}
	return out
}

// Moved counts partitions whose owner differs between a and b (including
// partitions that appear in only one of them).
func Moved(a, b Assignment) int {
	oa, ob := a.Owners(), b.Owners()
	n := 0
	for tp, m := range oa {
		if ob[tp] != m {
			n++
		}
	}
	for tp := range ob {
		if _, ok := oa[tp]; !ok {
			n++
		}
	}
	return n
}

// Assign computes a sticky, balanced assignment. It is a pure function:
// the same inputs (in any order) give the same output.
//
// Per topic t with P_t partitions and the N_t members subscribed to it
// (reserved static members included), q = P_t / N_t and r = P_t % N_t:
// r members have a quota of q+1, the others q. The q+1 slots go first to the
// members that already hold the most of t (so nobody sheds a partition it
// could keep), then to those with the lowest expected total load (what they
// hold so far over the topics already processed — topics go in name order —
// plus P_u/N_u for each topic u they subscribe to that is still to come),
// then by member id. Each member keeps its previous partitions of t (lowest first)
// up to its quota; the rest — orphaned, excess, new — go one by one (lowest
// first) to the live member with room below its quota holding the fewest of
// t, then the lowest expected total load, then the lowest id. So every topic is
// balanced within one among its subscribers, total load is balanced greedily
// across topics with different subscriber sets, and only partitions that
// must move do.
//
// A Reserved member keeps what it held up to its quota but receives nothing
// new; while a reservation stands its empty slots go to live members above
// their quota. A live member with an InstanceID that has no previous entry
// of its own inherits the previous entry of a member with the same
// InstanceID (a static member rejoining under a new member id).
//
// Partitions of topics nobody live subscribes to stay unassigned (and a
// reserved member keeps its own). Duplicate claims in prev (a corrupt
// snapshot) are resolved in favour of the lowest member id.
func Assign(prev Assignment, members []Member, partitions map[string][]Partition) Assignment {
	members = normalizeMembers(members)
	held := inheritStatic(prev, members)
	out := Assignment{}
	for _, m := range members {
		if !m.Reserved || held[m.ID].Count() > 0 {
			out[m.ID] = MemberAssignment{InstanceID: m.InstanceID, Topics: map[string][]Partition{}}
		}
	}
	ld := newLoad(members, partitions)
	for _, topic := range sortedKeys(partitions) {
		ld.startTopic(topic)
		assignTopic(topic, partitions[topic], members, held, out, ld)
	}
	for id, ma := range out {
		for t, ps := range ma.Topics {
			if len(ps) == 0 {
				delete(ma.Topics, t)
			}
		}
		if m := out[id]; len(m.Topics) == 0 && isReserved(members, id) {
			delete(out, id)
		}
	}
	return out
}

func isReserved(members []Member, id string) bool {
	i, ok := slices.BinarySearchFunc(members, id, func(m Member, id string) int { return strings.Compare(m.ID, id) })
	return ok && members[i].Reserved
}

// normalizeMembers sorts members by id, drops duplicates (a live entry wins
// over a reserved one) and sorts/dedupes topics.
func normalizeMembers(in []Member) []Member {
	ms := make([]Member, 0, len(in))
	for _, m := range in {
		m.Topics = slices.Clone(m.Topics)
		slices.Sort(m.Topics)
		m.Topics = slices.Compact(m.Topics)
		ms = append(ms, m)
	}
	slices.SortStableFunc(ms, func(a, b Member) int {
		return cmp.Or(strings.Compare(a.ID, b.ID), boolCmp(a.Reserved, b.Reserved))
	})
	return slices.CompactFunc(ms, func(a, b Member) bool { return a.ID == b.ID })
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// inheritStatic returns each member's previous holdings, claiming each
// partition at most once (lowest member id first).
func inheritStatic(prev Assignment, members []Member) map[string]MemberAssignment {
	byInstance := map[string]string{} // instance id → previous member id
	for _, id := range sortedKeys(prev) {
		if inst := prev[id].InstanceID; inst != "" {
			if _, dup := byInstance[inst]; !dup {
				byInstance[inst] = id
			}
		}
	}
	live := map[string]bool{}
	liveInstance := map[string]bool{}
	for _, m := range members {
		if !m.Reserved {
			live[m.ID] = true
			liveInstance[m.InstanceID] = m.InstanceID != ""
		}
	}
	claimed := map[TopicPartition]bool{}
	held := map[string]MemberAssignment{}
	for _, m := range members {
		if m.Reserved && liveInstance[m.InstanceID] {
			held[m.ID] = MemberAssignment{} // its instance is back under a new id
			continue
		}
		src, ok := prev[m.ID]
		if !ok && m.InstanceID != "" {
			if old, found := byInstance[m.InstanceID]; found && !live[old] {
				src = prev[old]
			}
		}
		ma := MemberAssignment{Topics: map[string][]Partition{}}
		for t, ps := range src.Topics {
			for _, p := range ps {
				tp := TopicPartition{t, p}
				if !claimed[tp] {
					claimed[tp] = true
					ma.Topics[t] = append(ma.Topics[t], p)
				}
			}
		}
		held[m.ID] = ma
	}
	return held
}

// load tracks each member's partitions so far plus the share it can still
// expect from the topics not processed yet, so that the q+1 slots of a topic
// go to members that will be light overall, not just light so far.
type load struct {
	total   map[string]int
	pending map[string]float64
	share   map[string]map[string]float64 // topic → member → P_t/N_t
}

func newLoad(members []Member, partitions map[string][]Partition) *load {
	ld := &load{total: map[string]int{}, pending: map[string]float64{}, share: map[string]map[string]float64{}}
	// Sorted: the float sums below must add up in the same order every time,
	// or rounding differences break ties differently (non-determinism).
	for _, topic := range sortedKeys(partitions) {
		ps := partitions[topic]
		var subs []string
		for _, m := range members {
			if slices.Contains(m.Topics, topic) {
				subs = append(subs, m.ID)
			}
		}
		ld.share[topic] = map[string]float64{}
		for _, id := range subs {
			s := float64(len(ps)) / float64(len(subs))
			ld.share[topic][id] = s
			ld.pending[id] += s
		}
	}
	return ld
}

func (ld *load) startTopic(topic string) {
	for id, s := range ld.share[topic] {
		ld.pending[id] -= s
	}
}

func (ld *load) add(id string, n int) { ld.total[id] += n }

// cmp orders members by expected overall load, then id.
func (ld *load) cmp(a, b string) int {
	return cmp.Or(cmp.Compare(float64(ld.total[a])+ld.pending[a], float64(ld.total[b])+ld.pending[b]), strings.Compare(a, b))
}

func assignTopic(topic string, parts []Partition, members []Member, held map[string]MemberAssignment,
	out Assignment, ld *load) {
	parts = slices.Clone(parts)
	slices.SortFunc(parts, Partition.Compare)
	parts = slices.Compact(parts)
	exists := map[Partition]bool{}
	for _, p := range parts {
		exists[p] = true
	}
	var subs []Member
	haveLive := false
	for _, m := range members {
		if slices.Contains(m.Topics, topic) {
			subs = append(subs, m)
			haveLive = haveLive || !m.Reserved
		}
	}
	if len(subs) == 0 || !haveLive {
		for _, m := range subs { // only reserved subscribers: they keep theirs
			keepOnly(m.ID, topic, held, exists, out, ld)
		}
		return
	}
	// Valid previous holdings of this topic.
	had := map[string][]Partition{}
	for _, m := range subs {
		for _, p := range held[m.ID].Topics[topic] {
			if exists[p] {
				had[m.ID] = append(had[m.ID], p)
			}
		}
		slices.SortFunc(had[m.ID], Partition.Compare)
	}
	quota := quotas(subs, len(parts), had, ld)
	taken := map[Partition]bool{}
	count := map[string]int{}
	for _, m := range subs {
		keep := had[m.ID][:min(len(had[m.ID]), quota[m.ID])]
		for _, p := range keep {
			taken[p] = true
		}
		give(out, m.ID, topic, keep...)
		count[m.ID] = len(keep)
		ld.add(m.ID, len(keep))
	}
	for _, p := range parts {
		if taken[p] {
			continue
		}
		best := pickLeastLoaded(subs, quota, count, ld)
		give(out, best, topic, p)
		count[best]++
		ld.add(best, 1)
	}
}

// keepOnly lets a reserved member keep its valid holdings of topic.
func keepOnly(id, topic string, held map[string]MemberAssignment, exists map[Partition]bool,
	out Assignment, ld *load) {
	for _, p := range held[id].Topics[topic] {
		if exists[p] {
			give(out, id, topic, p)
			ld.add(id, 1)
		}
	}
}

func quotas(subs []Member, p int, had map[string][]Partition, ld *load) map[string]int {
	q, r := p/len(subs), p%len(subs)
	order := slices.Clone(subs)
	slices.SortFunc(order, func(a, b Member) int {
		ha, hb := min(len(had[a.ID]), q+1), min(len(had[b.ID]), q+1)
		return cmp.Or(cmp.Compare(hb, ha), ld.cmp(a.ID, b.ID))
	})
	quota := map[string]int{}
	for i, m := range order {
		quota[m.ID] = q
		if i < r {
			quota[m.ID] = q + 1
		}
	}
	return quota
}

// pickLeastLoaded chooses the live member with room below its quota holding
// the fewest partitions of the topic, then the lowest total, then the lowest
// id; if none has room (reservations hold slots), the same order ignoring quotas.
func pickLeastLoaded(subs []Member, quota, count map[string]int, ld *load) string {
	best, bestRoom := "", false
	for _, m := range subs {
		if m.Reserved {
			continue
		}
		room := count[m.ID] < quota[m.ID]
		if best == "" || (room && !bestRoom) || (room == bestRoom && cmp.Or(cmp.Compare(count[m.ID], count[best]),
			ld.cmp(m.ID, best)) < 0) {
			best, bestRoom = m.ID, room
		}
	}
	return best
}

func give(out Assignment, id, topic string, ps ...Partition) {
	ma, ok := out[id]
	if !ok {
		ma = MemberAssignment{Topics: map[string][]Partition{}}
		out[id] = ma
	}
	ma.Topics[topic] = append(ma.Topics[topic], ps...)
	slices.SortFunc(ma.Topics[topic], Partition.Compare)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// validateAssignment reports the first way a is not a valid assignment of
// partitions to members (used by the leader as a last guard before writing).
func validateAssignment(a Assignment, partitions map[string][]Partition) error {
	seen := map[TopicPartition]string{}
	for _, id := range sortedKeys(a) {
		for t, ps := range a[id].Topics {
			for _, p := range ps {
				tp := TopicPartition{t, p}
				if o, dup := seen[tp]; dup {
					return fmt.Errorf("coordinator: %s assigned to both %s and %s", tp, o, id)
				}
				if !slices.Contains(partitions[t], p) {
					return fmt.Errorf("coordinator: %s assigned to %s does not exist", tp, id)
				}
				seen[tp] = id
			}
		}
	}
	return nil
}
