#!/usr/bin/env bash
# Runs the zkrecipes tests N times under CPU load and stops at the first
# failure, to shake out timing assumptions that only show on a busy machine.
#
# Usage: scripts/stress-zkrecipes.sh [N] [go test flags...]
#   N defaults to 20. Flags default to -race; pass your own to replace them, e.g.
#     scripts/stress-zkrecipes.sh 20 -race -run TestMutexOwnOldSessionNodeLingers
#     scripts/stress-zkrecipes.sh 5 -run Mutex        # without the race detector
# LOAD=k spawns k busy loops instead of nproc (LOAD=0: no extra load).
#
# The busy loops are this script's own children; they are killed by PID on
# exit, whatever the outcome. The test binary is built once and reused.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

n=${1:-20}
shift || true
if [ $# -eq 0 ]; then set -- -race; fi
load=${LOAD:-$(nproc)}

scripts/zk.sh install >/dev/null

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Split the flags: build flags (-race, -tags) go to the compiler, the rest to
# the test binary (as -test.<flag>).
build=() targs=()
for a in "$@"; do
  case $a in
    -race | -tags=*) build+=("$a") ;;
    -*) targs+=("-test.${a#-}") ;;
    *) targs+=("$a") ;;
  esac
done
go test -c -o "$work/zkrecipes.test" "${build[@]}" ./zkrecipes/

for ((i = 0; i < load; i++)); do
  (while :; do :; done) &
  pids+=($!)
done
echo "stress-zkrecipes: $n runs under $load busy loops, flags: ${*}"

start=$(date +%s)
for ((run = 1; run <= n; run++)); do
  log="$work/run-$run.log"
  t0=$(date +%s)
  if (cd zkrecipes && "$work/zkrecipes.test" -test.count=1 -test.timeout=20m "${targs[@]}") >"$log" 2>&1; then
    echo "run $run/$n: ok ($(($(date +%s) - t0))s)"
  else
    echo "run $run/$n: FAILED ($(($(date +%s) - t0))s); the failing tests:" >&2
    grep -E -e '--- FAIL|panic:|Error Trace|Error:|Messages:' "$log" | head -60 >&2 || true
    cp "$log" "${TMPDIR:-/tmp}/stress-zkrecipes-failure.log"
    echo "full log: ${TMPDIR:-/tmp}/stress-zkrecipes-failure.log" >&2
    exit 1
  fi
done
echo "stress-zkrecipes: $n/$n runs passed in $(($(date +%s) - start))s"
