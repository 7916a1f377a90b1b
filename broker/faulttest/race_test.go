//go:build race

package faulttest

// raceEnabled: the test binary has the race detector, so the broker child is
// built with it too (CI runs `go test -race`, whose cache it then shares).
const raceEnabled = true
