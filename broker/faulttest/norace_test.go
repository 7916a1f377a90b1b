//go:build !race

package faulttest

// raceEnabled: the test binary has no race detector, nor has the broker child.
const raceEnabled = false
