//go:build metaq_nowrite

package store

// benchNoWrite, in a binary built with `-tags metaq_nowrite` and nowhere
// else, makes group-commit cycles skip their segment writes and their
// commit (no pwrite, no commit log, no fsync) and acknowledge from memory.
// It exists for one measurement: the bound that the broker's and the
// client's work per message, with no storage cost at all, puts on the
// produce rate as partitions grow (`NOWRITE=1 scripts/bench-partitions.sh`,
// docs/BENCHMARKS.md). Nothing written by such a binary can be read back.
const benchNoWrite = true
