package store

import (
	"sync/atomic"
	"time"
)

// IDEpoch is the MetaQ message-id epoch in Unix milliseconds.
const IDEpoch = 1303895660503

const (
	idSeqBits    = 12
	idBrokerBits = 10
	idSeqMask    = 1<<idSeqBits - 1
	idTimeShift  = idSeqBits + idBrokerBits
)

// idGen hands out snowflake ids (millis-IDEpoch)<<22 | brokerID<<12 | seq.
// Ids are positive and strictly increasing: a wall clock that goes back is
// ignored, and a sequence overflow moves on to the next millisecond logically.
type idGen struct {
	broker int64
	now    func() int64 // Unix millis
	last   atomic.Int64
}

func newIDGen(brokerID int, now func() int64) *idGen {
	if now == nil {
		now = func() int64 { return time.Now().UnixMilli() }
	}
	return &idGen{broker: int64(brokerID) << idSeqBits, now: now}
}

// succ returns the id after x.
func (g *idGen) succ(x int64) int64 {
	if x&idSeqMask == idSeqMask {
		return ((x>>idTimeShift)+1)<<idTimeShift | g.broker
	}
	return x + 1
}

// reserve reserves n consecutive ids (in the succ order) and returns the
// first. n must be >= 1.
func (g *idGen) reserve(n int) int64 {
	floor := (g.now()-IDEpoch)<<idTimeShift | g.broker
	if floor <= 0 {
		floor = 1<<idTimeShift | g.broker
	}
	for {
		old := g.last.Load()
		first := floor
		if old != 0 && g.succ(old) > first {
			first = g.succ(old)
		}
		last := first
		for i := 1; i < n; i++ {
			last = g.succ(last)
		}
		if g.last.CompareAndSwap(old, last) {
			return first
		}
	}
}

// IDTime returns the wall-clock time encoded in a snowflake message id.
func IDTime(id int64) time.Time {
	return time.UnixMilli(id>>idTimeShift + IDEpoch)
}

// observe makes later ids sort after every id of this broker whose time
// is ts (Unix ms): ids continue in the next millisecond. Recovery calls it
// with the newest message time of each partition, so ids keep increasing
// across restarts even within one millisecond or when the clock went back.
func (g *idGen) observe(ts int64) {
	ms := ts - IDEpoch
	if ms <= 0 || ms >= 1<<(63-idTimeShift)-1 {
		return
	}
	floor := ms<<idTimeShift | g.broker | idSeqMask
	for {
		old := g.last.Load()
		if old >= floor || g.last.CompareAndSwap(old, floor) {
			return
		}
	}
}
