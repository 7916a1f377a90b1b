#!/usr/bin/env bash
# Measures the machine's limits and the project's benchmarks in one run, so
# every figure can be quoted as a ratio to what the machine did at that moment.
# Output: a log under docs/bench/ (and the console). Takes ~10-20 minutes.
#
#   scripts/bench.sh            everything
#   scripts/bench.sh store      only the limits and the store benchmarks
#   (sections: store broker producer consumer recipes rebalance tx)
#
# The machine is 2 shared cores: run it when nothing else is running, and
# compare medians of several runs (benchstat) rather than single numbers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/zk.sh install >/dev/null
mkdir -p docs/bench
out=docs/bench/$(date -u +%Y%m%dT%H%M%SZ).txt
want=${1:-all}
run() { echo "\$ $*" | tee -a "$out"; "$@" 2>&1 | grep -E '^(Benchmark|ok|FAIL|---)|records|copied' | tee -a "$out"; }
section() { [ "$want" = all ] || [ "$want" = "$1" ]; }

{ echo "# metaq benchmarks $(date -u +%FT%TZ) on $(nproc) cores, $(uname -r)"; echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)"; } | tee "$out"

echo "## machine limits" | tee -a "$out"
tmp=$(mktemp -d)
run dd if=/dev/zero of="$tmp/dd" bs=1M count=1024 conv=fdatasync
run dd if=/dev/zero of="$tmp/dd4k" bs=4k count=5000 oflag=dsync
rm -rf "$tmp"
run go test -run '^$' -bench . -benchtime 2s ./internal/machine/

if section store; then
  echo "## broker/store" | tee -a "$out"
  run go test -run '^$' -bench . -benchmem ./broker/store/
fi
if section broker; then
  echo "## broker (raw pipelined protocol clients, in-process)" | tee -a "$out"
  run go test -run '^$' -bench 'PipelinedPut' -benchtime 400000x -benchmem ./broker/
  run go test -run '^$' -bench 'GetCached' -benchtime 2000x ./broker/
  run go test -run '^$' -bench 'PutLatencyAt20k' -benchtime 60000x ./broker/
fi
if section producer && [ -d producer ]; then
  echo "## producer" | tee -a "$out"
  run go test -run '^$' -bench . -benchmem ./producer/
fi
if section consumer && [ -d consumer ]; then
  echo "## consumer" | tee -a "$out"
  run go test -run '^$' -bench . -benchmem ./consumer/
fi
if section recipes; then
  echo "## zkrecipes" | tee -a "$out"
  run go test -run '^$' -bench . -benchtime 200x ./zkrecipes/
fi
if section rebalance; then
  echo "## consumer-group rebalance" | tee -a "$out"
  run go test -run '^$' -bench Rebalance -benchtime 1x -timeout 30m ./coordinator/
fi
echo "results in $out"
