#!/usr/bin/env bash
# Go producer vs a raw pipelined client (issue 16: "Go producer >= 90% of the
# raw pipelined rate"), robust on a shared 2-core machine: the broker runs in
# its own process (a `metaq broker` without ZooKeeper, topic "bench" with one
# partition, group commit), so cpu-ns/msg is the client's alone and the
# client does not take the broker's CPU inside one process; the raw client and
# the producer run alternately (PAIRS pairs, the order swapped every pair) and
# the script prints, per pair, the rate ratio producer/raw and each side's
# client CPU per message, then the medians with min..max. Raw lines go to
# docs/bench/producer-vs-raw-<time>.txt.
#
#   scripts/bench-producer-vs-raw.sh [METAQ_BIN]     default: go build ./tools/metaq
#   PAIRS=9 MESSAGES=500000 scripts/bench-producer-vs-raw.sh
#   TEST_BIN=/tmp/producer-old.test scripts/bench-producer-vs-raw.sh   (a test binary of another tree)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
PAIRS=${PAIRS:-5}
MESSAGES=${MESSAGES:-300000}
tmp=$(mktemp -d)
cleanup() { [ -n "${bpid:-}" ] && kill "$bpid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
bin=${1:-}
if [ -z "$bin" ]; then
  bin=$tmp/metaq
  go build -o "$bin" ./tools/metaq
fi
# TEST_BIN: a prebuilt `go test -c ./producer/` (e.g. of an older tree, for a
# before/after); default: built from this tree.
if [ -n "${TEST_BIN:-}" ]; then cp "$TEST_BIN" "$tmp/producer.test"; else go test -c -o "$tmp/producer.test" ./producer/; fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e 's/^zk.zkEnable=true/zk.zkEnable=false/' conf/server.ini >"$tmp/broker.ini"
printf '\n[topic=bench]\nnumPartitions=1\n' >>"$tmp/broker.ini"
METAQ_SYSTEM_SERVERPORT=$port METAQ_SYSTEM_HOSTNAME=127.0.0.1 METAQ_SYSTEM_DATAPATH=$tmp/data \
  "$bin" broker -c "$tmp/broker.ini" --listen "127.0.0.1:$port" >"$tmp/broker.log" 2>&1 &
bpid=$!
for _ in $(seq 1 200); do "$bin" healthcheck --broker "127.0.0.1:$port" >/dev/null 2>&1 && break; sleep 0.05; done
mkdir -p docs/bench
out=docs/bench/producer-vs-raw-$(date -u +%Y%m%dT%H%M%SZ).txt
echo "# producer vs raw $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), broker $bin (own process), test binary ${TEST_BIN:-of this tree}, $MESSAGES messages per run" | tee "$out"
one() { # side: raw | producer
  METAQ_BENCH_BROKER=127.0.0.1:$port "$tmp/producer.test" -test.run '^$' -test.bench "ProducerVsRaw/$1\$" \
    -test.benchtime "${MESSAGES}x" -test.count 1 -test.benchmem 2>&1 | grep "^BenchmarkProducerVsRaw/" | tee -a "$out"
}
for i in $(seq 1 "$PAIRS"); do
  if [ $((i % 2)) = 1 ]; then one raw; one producer; else one producer; one raw; fi
done
python3 - "$out" <<'PY' | tee -a "$out"
import re, sys, statistics as st
rows = {'raw': [], 'producer': []}
for line in open(sys.argv[1]):
    m = re.match(r'BenchmarkProducerVsRaw/(raw|producer)\S*\s+\d+\s+\S+ ns/op\s+(\S+) cpu-ns/msg\s+(\S+) msgs/s\s+\S+ B/op\s+(\S+) allocs/op', line)
    if m:
        rows[m.group(1)].append((float(m.group(2)), float(m.group(3)), float(m.group(4))))
n = min(len(rows['raw']), len(rows['producer']))
ratio = [rows['producer'][i][1] / rows['raw'][i][1] for i in range(n)]
extra = [rows['producer'][i][0] - rows['raw'][i][0] for i in range(n)]
f = lambda xs, p=2: '%.*f (%.*f..%.*f)' % (p, st.median(xs), p, min(xs), p, max(xs))
print('# medians over %d pairs (min..max)' % n)
for side in ('raw', 'producer'):
    r = rows[side][:n]
    print('%-8s msgs/s %s  client cpu-ns/msg %s  allocs/op %s' % (side, f([x[1] for x in r], 0), f([x[0] for x in r], 0), f([x[2] for x in r], 0)))
print('producer/raw rate ratio %s' % f(ratio))
print('producer - raw client CPU per message: %s ns' % f(extra, 0))
PY
echo "# results in $out"
