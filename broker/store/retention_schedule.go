package store

import (
	"errors"
	"time"
)

// retentionLoop runs retention on schedule until Close:
//   - age-based retention (MaxAge) of a partition at each activation of its
//     RetentionSchedule (MetaQ's deleteWhen), and not in between;
//   - size-based retention (MaxBytes), and age-based retention of partitions
//     without a schedule, every RetentionInterval.
//
// It sleeps until the earliest next activation of any partition or the next
// interval tick, whichever is sooner, and plans again when a partition is
// added. Each round handles the activations in (previous round, now], so a
// late wake-up never skips one.
func (s *Store) retentionLoop() {
	defer s.wg.Done()
	checked := s.opts.Now()
	nextTick := checked.Add(s.opts.RetentionInterval)
	// planned holds the partitions whose next activation wake accounts
	// for: a replan (a partition was added; none is ever removed) looks
	// only at the others, so creating 10,000 partitions costs O(n), not
	// O(n²) schedule evaluations.
	var planned map[*Partition]bool
	var wake time.Time
	for {
		now := s.opts.Now()
		if planned == nil {
			planned, wake = map[*Partition]bool{}, nextTick
		}
		for _, p := range s.Partitions() {
			if planned[p] {
				continue
			}
			planned[p] = true
			if at := p.nextScheduledRetention(now); !at.IsZero() && at.Before(wake) {
				wake = at
			}
		}
		timer := time.NewTimer(wake.Sub(now))
		select {
		case <-s.stop:
			timer.Stop()
			return
		case <-s.replan:
			timer.Stop()
			continue
		case <-timer.C:
		}
		planned = nil // plan every partition afresh after a round
		now = s.opts.Now()
		tick := !now.Before(nextTick)
		if tick {
			nextTick = now.Add(s.opts.RetentionInterval)
		}
		if err := s.runDueRetention(checked, now, tick); err != nil {
			s.opts.Logger.Error("store: retention", "err", err)
		}
		checked = now
	}
}

// runDueRetention runs, for each partition, the retention that is due at now
// when the previous round ran at checked: the whole policy if its schedule
// fired in (checked, now] (or, without a schedule, on an interval tick), else
// only the size limit on a tick.
func (s *Store) runDueRetention(checked, now time.Time, tick bool) error {
	var errs []error
	for _, p := range s.Partitions() {
		pol := p.topt.Retention
		sched := p.topt.RetentionSchedule
		switch {
		case sched == nil && tick, sched != nil && scheduledIn(sched, checked, now):
			errs = append(errs, p.runRetention(now, pol))
		case tick && pol.MaxBytes > 0:
			pol.MaxAge = 0 // size only: age waits for the schedule
			errs = append(errs, p.runRetention(now, pol))
		}
	}
	return errors.Join(errs...)
}

// nextScheduledRetention is the partition's next age-based retention after
// now, or the zero Time if it has no schedule (or the schedule never fires).
func (p *Partition) nextScheduledRetention(now time.Time) time.Time {
	if p.topt.RetentionSchedule == nil {
		return time.Time{}
	}
	return p.topt.RetentionSchedule(now)
}

// scheduledIn reports whether sched has an activation in (after, upTo].
func scheduledIn(sched func(time.Time) time.Time, after, upTo time.Time) bool {
	at := sched(after)
	return !at.IsZero() && !at.After(upTo)
}

// replanRetention tells the retention loop that a partition was added (its
// schedule may fire before the loop's planned wake-up). It never blocks, and
// does nothing without a loop (replan is nil then).
func (s *Store) replanRetention() {
	select {
	case s.replan <- struct{}{}:
	default:
	}
}
