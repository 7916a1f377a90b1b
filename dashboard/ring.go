package dashboard

// Ring is a bounded series of samples: once full, each Push drops the
// oldest. The dashboard keeps one per rate and lag series, so its memory
// does not grow with uptime.
type Ring struct {
	vals  []float64
	start int // index of the oldest sample
	n     int
}

// NewRing returns a ring that keeps the last size samples (at least 2).
func NewRing(size int) *Ring {
	return &Ring{vals: make([]float64, max(size, 2))}
}

// Push appends v, dropping the oldest sample when the ring is full.
func (r *Ring) Push(v float64) {
	if r.n < len(r.vals) {
		r.vals[(r.start+r.n)%len(r.vals)] = v
		r.n++
		return
	}
	r.vals[r.start] = v
	r.start = (r.start + 1) % len(r.vals)
}

// Values returns the samples, oldest first, in a new slice.
func (r *Ring) Values() []float64 {
	out := make([]float64, r.n)
	for i := range r.n {
		out[i] = r.vals[(r.start+i)%len(r.vals)]
	}
	return out
}

// Len is the number of samples held.
func (r *Ring) Len() int { return r.n }

// history is the set of named series; series not updated in a collection
// cycle (a deleted topic, a gone group) are dropped by prune.
type history struct {
	size   int
	series map[string]*Ring
	seen   map[string]bool
}

func newHistory(size int) *history {
	return &history{size: size, series: map[string]*Ring{}, seen: map[string]bool{}}
}

// push appends v to series key and returns its samples.
func (h *history) push(key string, v float64) []float64 {
	r := h.series[key]
	if r == nil {
		r = NewRing(h.size)
		h.series[key] = r
	}
	r.Push(v)
	h.seen[key] = true
	return r.Values()
}

// prune drops the series not pushed to since the last prune.
func (h *history) prune() {
	for k := range h.series {
		if !h.seen[k] {
			delete(h.series, k)
		}
	}
	clear(h.seen)
}
