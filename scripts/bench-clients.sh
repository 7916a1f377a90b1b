#!/usr/bin/env bash
# Client CPU and latency, before/after: runs `metaq bench` with two client
# binaries alternately (A, B, A, B, ...) against one broker process (group
# commit, 4 partitions per topic) and a real ZooKeeper on loopback, so both
# see the same machine load. Prints one line per run and the medians with
# min..max; raw lines go to docs/bench/clients-<time>.txt.
#
#   scripts/bench-clients.sh OLD_BIN NEW_BIN      e.g. a `go build` of main and of this tree
#   RUNS=5 DURATION=10s scripts/bench-clients.sh bin/metaq-main bin/metaq
#
# The broker is NEW_BIN's. On a shared machine quote medians, never one run.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
[ $# -eq 2 ] || { echo "usage: $0 OLD_BIN NEW_BIN" >&2; exit 2; }
old=$(realpath "$1"); new=$(realpath "$2")
RUNS=${RUNS:-3}
DURATION=${DURATION:-5s}
MESSAGES=${MESSAGES:-300000}
scripts/zk.sh install >/dev/null
mkdir -p docs/bench
out=docs/bench/clients-$(date -u +%Y%m%dT%H%M%SZ).txt
tmp=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export METAQ_DATA=$tmp METAQ_ZK_PORT=$(free_port)
zk=127.0.0.1:$METAQ_ZK_PORT
bport=$(free_port)
cleanup() { [ -n "${bpid:-}" ] && kill "$bpid" 2>/dev/null; scripts/zk.sh stop >/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
scripts/zk.sh start >/dev/null
cfg=$tmp/bench.ini
{ cat conf/server.ini; printf '\n[topic=b100]\nnumPartitions=4\n[topic=e2e]\nnumPartitions=4\n[topic=e2e1k]\nnumPartitions=4\n'; } >"$cfg"
METAQ_SYSTEM_BROKERID=0 METAQ_SYSTEM_SERVERPORT=$bport METAQ_SYSTEM_HOSTNAME=127.0.0.1 \
  METAQ_SYSTEM_DATAPATH=$tmp/broker METAQ_ZOOKEEPER_ZKCONNECT=$zk \
  "$new" broker -c "$cfg" --listen 127.0.0.1:$bport >"$tmp/broker.log" 2>&1 &
bpid=$!
for _ in $(seq 1 200); do "$new" healthcheck --broker 127.0.0.1:$bport >/dev/null 2>&1 && break; sleep 0.05; done

log() { echo "$*" | tee -a "$out"; }
keys='msgs_per_s p50_us p99_us p999_us cpu_us_per_msg ctx_switches_per_msg rw_syscalls_per_msg'
ab() { # label, then bench arguments
  local label=$1; shift
  log "## $label (load $(cut -d' ' -f1-3 /proc/loadavg))"
  for _ in $(seq 1 "$RUNS"); do
    for side in old new; do
      bin=$old; [ $side = new ] && bin=$new
      "$bin" bench "$@" --zk "$zk" --json 2>/dev/null | python3 -c "
import json,sys; d=json.load(sys.stdin)
print('$label', '$side', ' '.join('%s=%.3f' % (k, d.get(k, -1)) for k in '$keys'.split()))" | tee -a "$out"
    done
  done
}
log "# metaq client benchmark $(date -u +%FT%TZ), $(nproc) cores, old=$old new=$new"
"$new" bench produce --zk "$zk" --topic b100 --messages "$MESSAGES" --size 100 >/dev/null 2>&1 # a backlog for consume
ab "e2e 100B 10k/s" e2e --topic e2e --rate 10000 --duration "$DURATION" --size 100
ab "e2e 1KiB 10k/s" e2e --topic e2e1k --rate 10000 --duration "$DURATION" --size 1024
ab "produce 100B" produce --topic b100 --messages "$MESSAGES" --size 100
ab "consume 100B" consume --topic b100 --messages "$MESSAGES"
log "# medians (min..max)"
python3 - "$out" "$keys" <<'PY' | tee -a "$out"
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    if line.startswith('#'):
        continue
    head, _, rest = line.partition(' old ') if ' old ' in line else line.partition(' new ')
    side = 'old' if ' old ' in line else 'new'
    kv = dict(p.split('=') for p in rest.split())
    rows.setdefault((head, side), []).append({k: float(v) for k, v in kv.items()})
for (label, side), rs in rows.items():
    print(label, side, ' '.join('%s=%.3g (%.3g..%.3g)' % (k, st.median(r[k] for r in rs), min(r[k] for r in rs), max(r[k] for r in rs)) for k in sys.argv[2].split()))
PY
log "# results in $out"
