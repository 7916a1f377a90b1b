//go:build race

package faulttest

// raceEnabled: the test binary has the race detector, so the broker child is
// built with it too (CI runs `go test -race`, whose cache it then shares).
const raceEnabled = true

// raceMemoryFactor scales memory bounds for a broker built with the race
// detector, whose shadow memory multiplies the heap.
const raceMemoryFactor = 4
