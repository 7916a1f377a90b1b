#!/usr/bin/env bash
# Whole-system numbers on loopback: a real ZooKeeper, one `metaq broker`
# process (group commit: every ack after fsync) and the `metaq bench` commands
# as a separate client process. The broker's CPU per message is read from
# /proc, with gnet multicore off and on. Each case runs RUNS times (default 3);
# quote the median and the min..max.
#
#   scripts/bench-system.sh                 # all cases, 1,000,000 messages each
#   MESSAGES=200000 RUNS=1 scripts/bench-system.sh
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
MESSAGES=${MESSAGES:-1000000}
RUNS=${RUNS:-3}
scripts/zk.sh install >/dev/null
go build -o bin/metaq ./tools/metaq
mkdir -p docs/bench
out=docs/bench/system-$(date -u +%Y%m%dT%H%M%SZ).txt
tmp=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export METAQ_DATA=$tmp METAQ_ZK_PORT=$(free_port)
zk=127.0.0.1:$METAQ_ZK_PORT
bport=$(free_port)
cleanup() { [ -n "${bpid:-}" ] && kill "$bpid" 2>/dev/null; scripts/zk.sh stop >/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
scripts/zk.sh start >/dev/null
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14+$15}' /proc/"$1"/stat; }
log() { echo "$*" | tee -a "$out"; }

log "# metaq system benchmark $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $MESSAGES messages"
log "# disk: $(dd if=/dev/zero of="$tmp/dd" bs=1M count=1024 conv=fdatasync 2>&1 | tail -1)"; rm -f "$tmp/dd"

cfg=$tmp/bench.ini
{ cat conf/server.ini; printf '\n[topic=b100]\nnumPartitions=4\n[topic=b1024]\nnumPartitions=4\n[topic=e2e]\nnumPartitions=4\n'; } >"$cfg"

start_broker() { # $1 = multicore true|false, $2 = run number
  local data=$tmp/broker-$1-$2
  METAQ_SYSTEM_BROKERID=0 METAQ_SYSTEM_SERVERPORT=$bport METAQ_SYSTEM_HOSTNAME=127.0.0.1 \
  METAQ_SYSTEM_DATAPATH=$data \
  METAQ_SYSTEM_MULTICORE=$1 METAQ_ZOOKEEPER_ZKCONNECT=$zk \
    bin/metaq broker -c "$cfg" --listen 127.0.0.1:$bport >"$tmp/broker.log" 2>&1 &
  bpid=$!
  for _ in $(seq 1 200); do bin/metaq healthcheck --broker 127.0.0.1:$bport >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "broker did not start:"; tail "$tmp/broker.log"; exit 1
}
stop_broker() { kill "$bpid"; wait "$bpid" 2>/dev/null || true; bpid=; }

measure() { # label, then the bench command; prints its JSON plus the broker's CPU per message
  local label=$1; shift
  local before after json msgs
  before=$(cpu_ticks "$bpid")
  json=$("$@" --json)
  after=$(cpu_ticks "$bpid")
  msgs=$(echo "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"])')
  log "$label $(echo "$json" | python3 -c "import json,sys; d=json.load(sys.stdin); d['broker_cpu_us_per_msg']=round(($after-$before)*1e6/$ticks/max($msgs,1),3); print(json.dumps(d, sort_keys=True))")"
}

for run in $(seq 1 "$RUNS"); do
  for mc in false true; do
    start_broker "$mc" "$run"
    for size in 100 1024; do
      measure "produce size=$size multicore=$mc run=$run" bin/metaq bench produce --zk "$zk" --topic "b$size" --messages "$MESSAGES" --size "$size"
      measure "consume size=$size multicore=$mc run=$run" bin/metaq bench consume --zk "$zk" --topic "b$size" --messages "$MESSAGES"
    done
    measure "e2e rate=10000 size=100 multicore=$mc run=$run" bin/metaq bench e2e --zk "$zk" --topic e2e --rate 10000 --duration 10s --size 100
    stop_broker
  done
done
log "# results in $out"
