package txlog

// TxState is the journaled state of a live transaction.
type TxState uint8

// Live transaction states.
const (
	Prepared            TxState = iota + 1 // PREPARE, no outcome yet
	Committing                             // COMMIT without DONE: partition appends may be missing
	HeuristicCommitted                     // committed by an operator, until FORGET
	HeuristicRolledBack                    // rolled back by an operator, until FORGET
)

func (s TxState) String() string {
	switch s {
	case Prepared:
		return "prepared"
	case Committing:
		return "committing"
	case HeuristicCommitted:
		return "heuristically committed"
	case HeuristicRolledBack:
		return "heuristically rolled back"
	}
	return "unknown"
}

// Outcome is how a finished transaction ended.
type Outcome uint8

// Outcomes remembered for idempotent replays of COMMIT and ROLLBACK.
const (
	Committed Outcome = iota + 1
	RolledBack
)

// Tx is a live journaled transaction.
type Tx struct {
	Key       string
	State     TxState
	Heuristic bool        // Committing: the commit was decided by an operator
	Msgs      []Message   // Prepared, Committing
	Parts     []PartStart // Committing
	Owner     string      // the principal that began it; "" = none (see Record.Owner)
}

// State is the fold of a journal: the live transactions and the outcomes
// of recently finished ones. Every record is a "set" operation, so replaying
// a record twice, or a snapshot after the records it summarises, gives the
// same state (the idempotency that rotation relies on; see doc.go).
type State struct {
	Live        map[string]*Tx
	outcomes    map[string]Outcome
	order       []string // outcome keys, oldest first (may hold stale keys)
	maxOutcomes int
}

// NewState returns an empty state remembering up to maxOutcomes outcomes.
func NewState(maxOutcomes int) *State {
	if maxOutcomes <= 0 {
		maxOutcomes = DefaultMaxOutcomes
	}
	return &State{Live: map[string]*Tx{}, outcomes: map[string]Outcome{}, maxOutcomes: maxOutcomes}
}

// Outcome returns the remembered outcome of a finished transaction.
func (s *State) Outcome(key string) (Outcome, bool) {
	o, ok := s.outcomes[key]
	return o, ok
}

// Outcomes returns the remembered outcomes, oldest first.
func (s *State) Outcomes() []KeyOutcome {
	out := make([]KeyOutcome, 0, len(s.outcomes))
	seen := make(map[string]bool, len(s.outcomes))
	for _, k := range s.order {
		if o, ok := s.outcomes[k]; ok && !seen[k] {
			seen[k] = true
			out = append(out, KeyOutcome{Key: k, Outcome: o})
		}
	}
	return out
}

// KeyOutcome is a remembered outcome.
type KeyOutcome struct {
	Key     string
	Outcome Outcome
}

func (s *State) setOutcome(key string, o Outcome) {
	if _, ok := s.outcomes[key]; !ok {
		s.order = append(s.order, key)
	}
	s.outcomes[key] = o
	for len(s.outcomes) > s.maxOutcomes && len(s.order) > 0 {
		delete(s.outcomes, s.order[0])
		s.order = s.order[1:]
	}
	if len(s.order) > 2*s.maxOutcomes+16 { // compact stale keys
		keep := s.order[:0:0]
		for _, k := range s.order {
			if _, ok := s.outcomes[k]; ok {
				keep = append(keep, k)
			}
		}
		s.order = keep
	}
}

func (s *State) forgetOutcome(key string) {
	delete(s.outcomes, key) // its order entry becomes stale
}

// Apply folds one record into the state.
func (s *State) Apply(r *Record) {
	switch r.Kind {
	case KindPrepare:
		s.forgetOutcome(r.Key)
		s.Live[r.Key] = &Tx{Key: r.Key, State: Prepared, Msgs: r.Msgs, Owner: r.Owner}
	case KindCommit:
		msgs, owner := r.Msgs, r.Owner
		if !r.Inline {
			t := s.Live[r.Key]
			if t == nil || t.State != Prepared && t.State != Committing {
				return // nothing to commit: the PREPARE was lost (flush mode 0) or already finished
			}
			msgs = t.Msgs
			owner = s.owner(r)
		}
		s.forgetOutcome(r.Key)
		s.Live[r.Key] = &Tx{Key: r.Key, State: Committing, Heuristic: r.Heuristic, Msgs: msgs, Parts: r.Parts, Owner: owner}
	case KindDone:
		if r.Heuristic {
			s.Live[r.Key] = &Tx{Key: r.Key, State: HeuristicCommitted, Owner: s.owner(r)}
			return
		}
		delete(s.Live, r.Key)
		s.setOutcome(r.Key, Committed)
	case KindRollback:
		if r.Heuristic {
			s.Live[r.Key] = &Tx{Key: r.Key, State: HeuristicRolledBack, Owner: s.owner(r)}
			return
		}
		delete(s.Live, r.Key)
		s.setOutcome(r.Key, RolledBack)
	case KindForget:
		delete(s.Live, r.Key)
		s.forgetOutcome(r.Key)
	}
}

// owner is the record's owner, else that of the live transaction it
// continues (a record that follows the PREPARE need not repeat it).
func (s *State) owner(r *Record) string {
	if r.Owner != "" {
		return r.Owner
	}
	if t := s.Live[r.Key]; t != nil {
		return t.Owner
	}
	return ""
}

// Snapshot returns records that rebuild this state from nothing: the
// outcomes (oldest first), then every live transaction.
func (s *State) Snapshot() []Record {
	var recs []Record
	for _, ko := range s.Outcomes() {
		k := KindDone
		if ko.Outcome == RolledBack {
			k = KindRollback
		}
		recs = append(recs, Record{Kind: k, Key: ko.Key})
	}
	for _, t := range s.Live {
		switch t.State {
		case Prepared:
			recs = append(recs, Record{Kind: KindPrepare, Key: t.Key, Msgs: t.Msgs, Owner: t.Owner})
		case Committing:
			recs = append(recs, Record{Kind: KindCommit, Key: t.Key, Heuristic: t.Heuristic, Inline: true,
				Msgs: t.Msgs, Parts: t.Parts, Owner: t.Owner})
		case HeuristicCommitted:
			recs = append(recs, Record{Kind: KindDone, Key: t.Key, Heuristic: true, Owner: t.Owner})
		case HeuristicRolledBack:
			recs = append(recs, Record{Kind: KindRollback, Key: t.Key, Heuristic: true, Owner: t.Owner})
		}
	}
	return recs
}
