//go:build !race

package faulttest

// raceEnabled: the test binary has no race detector, nor has the broker child.
const raceEnabled = false

// raceMemoryFactor scales memory bounds for a broker built with the race
// detector, whose shadow memory multiplies the heap.
const raceMemoryFactor = 1
