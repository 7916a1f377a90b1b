// Package machine holds benchmarks of the machine's own limits (loopback TCP
// bandwidth, small-syscall cost), run by scripts/bench.sh in the same run as
// the project's benchmarks so that every figure can be quoted as a ratio to
// what the machine can do at that moment. It has no non-test code.
package machine
