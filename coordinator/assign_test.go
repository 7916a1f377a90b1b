package coordinator

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func parts(brokers, per int) []Partition {
	var out []Partition
	for b := 0; b < brokers; b++ {
		for p := 0; p < per; p++ {
			out = append(out, Partition{b, p})
		}
	}
	return out
}

func members(topics []string, ids ...string) []Member {
	out := make([]Member, len(ids))
	for i, id := range ids {
		out[i] = Member{ID: id, Topics: topics}
	}
	return out
}

func counts(a Assignment, topic string) map[string]int {
	out := map[string]int{}
	for id, ma := range a {
		out[id] = len(ma.Topics[topic])
	}
	return out
}

// checkValid: every partition of a topic with a live subscriber has exactly
// one owner, which subscribes to it; nothing else is assigned.
func checkValid(t *testing.T, a Assignment, ms []Member, ps map[string][]Partition) {
	t.Helper()
	require.NoError(t, validateAssignment(a, ps))
	owners := a.Owners()
	byID := map[string]Member{}
	for _, m := range ms {
		byID[m.ID] = m
	}
	for topic, list := range ps {
		live := false
		for _, m := range ms {
			live = live || (!m.Reserved && slices.Contains(m.Topics, topic))
		}
		for _, p := range list {
			o, ok := owners[TopicPartition{topic, p}]
			if live {
				require.True(t, ok, "%s/%s unowned", topic, p)
			}
			if ok {
				require.Contains(t, byID[o].Topics, topic, "%s owns %s/%s without subscribing", o, topic, p)
			}
		}
	}
}

// checkBalanced: per topic, subscribers' counts differ by at most one (no reservations).
func checkBalanced(t *testing.T, a Assignment, ms []Member, ps map[string][]Partition) {
	t.Helper()
	for topic := range ps {
		lo, hi, n := 1<<30, -1, 0
		for _, m := range ms {
			if slices.Contains(m.Topics, topic) {
				c := len(a[m.ID].Topics[topic])
				lo, hi, n = min(lo, c), max(hi, c), n+1
			}
		}
		if n > 0 {
			require.LessOrEqual(t, hi-lo, 1, "topic %s unbalanced: %v", topic, counts(a, topic))
		}
	}
}

func TestAssignScenarios(t *testing.T) {
	one := []string{"t"}
	p12 := map[string][]Partition{"t": parts(3, 4)}
	base := Assign(nil, members(one, "a", "b", "c"), p12)
	cases := []struct {
		name      string
		prev      Assignment
		members   []Member
		parts     map[string][]Partition
		maxMoved  int // -1: don't check
		wantCount map[string]int
	}{
		{"initial formation spreads evenly", nil, members(one, "a", "b", "c"), p12, -1, map[string]int{"a": 4, "b": 4, "c": 4}},
		{"join moves only the new member's share", base, members(one, "a", "b", "c", "d"), p12, 3, map[string]int{"a": 3, "b": 3, "c": 3, "d": 3}},
		{"leave moves only the leaver's partitions", base, members(one, "a", "c"), p12, 4, map[string]int{"a": 6, "c": 6}},
		{"nothing changes: nothing moves", base, members(one, "a", "b", "c"), p12, 0, nil},
		{"more members than partitions", base, members(one, "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m"), p12, 9, nil},
		{"topic added", base, members([]string{"t", "u"}, "a", "b", "c"), map[string][]Partition{"t": parts(3, 4), "u": parts(1, 3)}, 3,
			map[string]int{"a": 5, "b": 5, "c": 5}},
		{"partitions added on a new broker", base, members(one, "a", "b", "c"), map[string][]Partition{"t": parts(4, 4)}, 4, nil},
		{"partitions removed", base, members(one, "a", "b", "c"), map[string][]Partition{"t": parts(2, 4)}, 4, nil},
		{"uneven subscriptions balance totals",
			nil,
			[]Member{{ID: "a", Topics: []string{"x", "y"}}, {ID: "b", Topics: []string{"x"}}, {ID: "c", Topics: []string{"y"}}},
			map[string][]Partition{"x": parts(1, 3), "y": parts(1, 3)}, -1, map[string]int{"a": 2, "b": 2, "c": 2}},
		{"topic without subscribers stays unassigned", base, members(one, "a", "b", "c"),
			map[string][]Partition{"t": parts(3, 4), "zzz": parts(1, 5)}, 0, nil},
		{"member without topics gets nothing", base, append(members(one, "a", "b", "c"), Member{ID: "z"}), p12, 0, map[string]int{"z": 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Assign(tc.prev, tc.members, tc.parts)
			checkValid(t, got, tc.members, tc.parts)
			checkBalanced(t, got, tc.members, tc.parts)
			if tc.maxMoved >= 0 {
				require.LessOrEqual(t, Moved(tc.prev, got), tc.maxMoved+removedCount(tc.prev, tc.parts))
			}
			for id, want := range tc.wantCount {
				require.Equal(t, want, got[id].Count(), "member %s: %v", id, got)
			}
		})
	}
}

// removedCount counts previously assigned partitions that no longer exist (they "move" to nobody).
func removedCount(prev Assignment, ps map[string][]Partition) int {
	n := 0
	for tp := range prev.Owners() {
		if !slices.Contains(ps[tp.Topic], tp.Partition) {
			n++
		}
	}
	return n
}

func TestAssignDeterministicWhateverTheInputOrder(t *testing.T) {
	ms := members([]string{"t", "u"}, "m3", "m1", "m2")
	ps := map[string][]Partition{"t": {{2, 1}, {0, 0}, {1, 5}, {0, 1}}, "u": parts(2, 3)}
	want := Assign(nil, ms, ps)
	for i := 0; i < 50; i++ {
		shuffled := slices.Clone(ms)
		rand.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		sp := map[string][]Partition{}
		for k, v := range ps {
			v = slices.Clone(v)
			rand.Shuffle(len(v), func(a, b int) { v[a], v[b] = v[b], v[a] })
			sp[k] = v
		}
		require.Equal(t, want, Assign(nil, shuffled, sp))
	}
}

func TestAssignStaticMembership(t *testing.T) {
	ps := map[string][]Partition{"t": parts(1, 9)}
	ms := []Member{{ID: "a", InstanceID: "ia", Topics: []string{"t"}}, {ID: "b", InstanceID: "ib", Topics: []string{"t"}},
		{ID: "c", InstanceID: "ic", Topics: []string{"t"}}}
	base := Assign(nil, ms, ps)

	t.Run("departed static member keeps its partitions reserved", func(t *testing.T) {
		res := slices.Clone(ms)
		res[1].Reserved = true
		got := Assign(base, res, ps)
		require.Equal(t, base["b"].Topics, got["b"].Topics)
		require.Zero(t, Moved(base, got))
	})
	t.Run("rejoin under a new member id gets them back with no movement", func(t *testing.T) {
		back := slices.Clone(ms)
		back[1] = Member{ID: "b2", InstanceID: "ib", Topics: []string{"t"}}
		got := Assign(base, back, ps)
		require.Equal(t, base["b"].Topics, got["b2"].Topics)
		require.Equal(t, 3, Moved(base, got)) // only the name changed: b's three now listed under b2
		_, still := got["b"]
		require.False(t, still)
	})
	t.Run("grace over: reservation dropped, partitions spread", func(t *testing.T) {
		got := Assign(base, []Member{ms[0], ms[2]}, ps)
		checkBalanced(t, got, []Member{ms[0], ms[2]}, ps)
		require.Equal(t, 3, Moved(base, got))
	})
	t.Run("reserved member gets nothing new", func(t *testing.T) {
		res := []Member{{ID: "r", InstanceID: "ir", Topics: []string{"t"}, Reserved: true}, ms[0]}
		got := Assign(nil, res, ps)
		require.Zero(t, got["r"].Count())
		require.Equal(t, 9, got["a"].Count())
	})
}

func TestAssignPropertyRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 400; iter++ {
		nTopics := 1 + r.IntN(3)
		ps := map[string][]Partition{}
		topics := []string{}
		for i := 0; i < nTopics; i++ {
			name := fmt.Sprintf("t%d", i)
			topics = append(topics, name)
			ps[name] = parts(1+r.IntN(3), r.IntN(12))
		}
		randMembers := func() []Member {
			n := 1 + r.IntN(8)
			var ms []Member
			for i := 0; i < n; i++ {
				var sub []string
				for _, tn := range topics {
					if r.IntN(3) > 0 {
						sub = append(sub, tn)
					}
				}
				ms = append(ms, Member{ID: fmt.Sprintf("m%d", r.IntN(12)), Topics: sub})
			}
			return normalizeMembers(ms)
		}
		ms1 := randMembers()
		a1 := Assign(nil, ms1, ps)
		checkValid(t, a1, ms1, ps)
		checkBalanced(t, a1, ms1, ps)
		// A second round: membership changes, stickiness must hold.
		ms2 := randMembers()
		a2 := Assign(a1, ms2, ps)
		checkValid(t, a2, ms2, ps)
		checkBalanced(t, a2, ms2, ps)
		require.Equal(t, a2, Assign(a1, ms2, ps), "not deterministic")
		for _, m := range ms2 {
			for _, topic := range m.Topics {
				old := a1[m.ID].Topics[topic]
				if len(old) == 0 {
					continue
				}
				n := 0
				for _, m2 := range ms2 {
					if slices.Contains(m2.Topics, topic) {
						n++
					}
				}
				floor := len(ps[topic]) / n
				kept := 0
				for _, p := range old {
					if slices.Contains(a2[m.ID].Topics[topic], p) {
						kept++
					}
				}
				require.GreaterOrEqual(t, kept, min(len(old), floor), "member %s lost partitions of %s below its fair share", m.ID, topic)
			}
		}
	}
}

func TestAssignMinimalMovementAtScale(t *testing.T) {
	ps := map[string][]Partition{"t": parts(10, 100)}
	var ids []string
	for i := 0; i < 50; i++ {
		ids = append(ids, fmt.Sprintf("m%02d", i))
	}
	a := Assign(nil, members([]string{"t"}, ids...), ps)
	join := Assign(a, members([]string{"t"}, append(slices.Clone(ids), "new")...), ps)
	require.LessOrEqual(t, Moved(a, join), 1000/51+1)
	leave := Assign(a, members([]string{"t"}, ids[1:]...), ps)
	require.Equal(t, 20, Moved(a, leave))
}
