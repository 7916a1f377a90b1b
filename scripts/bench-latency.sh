#!/usr/bin/env bash
# End-to-end latency of metaq against Redis Streams in the same run on the
# same machine (issue 16), plus the disk's fsync floor:
#
#   - metaq: one broker process (group commit: every put acknowledged after
#     its fdatasync) and ZooKeeper on loopback; `metaq bench e2e` on a topic
#     of 1 partition (one file: the commit cycle fdatasyncs inline) and of 4;
#   - Redis Streams (tools/peerbench redis-e2e, go-redis): redis-server on
#     127.0.0.1 twice, without persistence (save "", appendonly no: Redis's
#     usual setup, nothing durable at the ack) and with appendonly yes +
#     appendfsync always (every write fsynced before its reply: the fair
#     durable comparison), its AOF on the same volume as the broker's data;
#   - the floor on that volume (peerbench fsync): an ideal group commit at
#     the same rate and size (messages queued, one append + fdatasync per
#     cycle, no network: what ack-after-fsync can reach here), alternating
#     with the systems; and one 100 B append + fdatasync back to back,
#     before and after the runs.
#
# Systems run alternately (floor, metaq 1p, metaq 4p, redis, redis-aof), so
# all see the same machine load. Prints one line per run, then medians with
# min..max and the distribution of the median run of each; raw JSON lines
# (with the full histogram) go to docs/bench/latency-<time>.txt.
#
#   scripts/bench-latency.sh [METAQ_BIN]           default: a go build of this tree
#   RUNS=5 DURATION=10s SIZES="100 1024" RATE=10000 scripts/bench-latency.sh bin/metaq
#
# redis-server is installed with apt-get when missing (like scripts/zk.sh
# does for ZooKeeper); when it cannot be, the Redis rows are skipped with a
# message. On a shared machine quote medians, never one run.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
RUNS=${RUNS:-3}
DURATION=${DURATION:-5s}
SIZES=${SIZES:-100 1024}
RATE=${RATE:-10000}
tmp=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  scripts/zk.sh stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

if [ $# -ge 1 ]; then metaq=$(realpath "$1"); else metaq=$tmp/metaq; go build -o "$metaq" ./tools/metaq; fi
peer=$tmp/peerbench
(cd tools/peerbench && go build -o "$peer" .)

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo -n "$@"
  else return 1
  fi
}
redis=yes
if ! command -v redis-server >/dev/null; then
  echo "bench-latency: installing redis-server (apt-get install redis-server) for the Redis rows..." >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1 ||
    { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1; } || true
  if ! command -v redis-server >/dev/null; then
    echo "bench-latency: redis-server is not installed and could not be installed (need root or sudo, and apt);" \
      "skipping the Redis rows. Install it (apt-get install redis-server) to compare." >&2
    redis=no
  fi
fi

scripts/zk.sh install >/dev/null
mkdir -p docs/bench
out=docs/bench/latency-$(date -u +%Y%m%dT%H%M%SZ).txt
export METAQ_DATA=$tmp METAQ_ZK_PORT=$(free_port)
zk=127.0.0.1:$METAQ_ZK_PORT
scripts/zk.sh start >/dev/null
bport=$(free_port)
cfg=$tmp/bench.ini
{ cat conf/server.ini; printf '\n[topic=lat1]\nnumPartitions=1\n[topic=lat4]\nnumPartitions=4\n'; } >"$cfg"
METAQ_SYSTEM_BROKERID=0 METAQ_SYSTEM_SERVERPORT=$bport METAQ_SYSTEM_HOSTNAME=127.0.0.1 \
  METAQ_SYSTEM_DATAPATH=$tmp/broker METAQ_ZOOKEEPER_ZKCONNECT=$zk \
  "$metaq" broker -c "$cfg" --listen 127.0.0.1:$bport >"$tmp/broker.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do "$metaq" healthcheck --broker 127.0.0.1:$bport >/dev/null 2>&1 && break; sleep 0.05; done
"$metaq" healthcheck --broker 127.0.0.1:$bport >/dev/null || { echo "bench-latency: the broker did not start:" >&2; cat "$tmp/broker.log" >&2; exit 1; }

start_redis() { # variable name for the port, then redis-server options (not in a subshell: pids must see it)
  local var=$1 port; shift
  port=$(free_port)
  mkdir -p "$tmp/$var"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$tmp/$var" --daemonize no --logfile "$tmp/$var/log" \
    --protected-mode yes "$@" >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
  printf -v "$var" %s "$port"
}
if [ $redis = yes ]; then
  start_redis rmem --save '' --appendonly no
  start_redis raof --save '' --appendonly yes --appendfsync always
fi

log() { echo "$*" | tee -a "$out"; }
line() { # label, system: a JSON result on stdin -> a raw line in $out and a short one on stdout
  python3 -c "
import json,sys
d=json.load(sys.stdin)
short={k: d.get(k, -1) for k in ('msgs_per_s','failed','p50_us','p99_us','p999_us','max_us','cpu_us_per_msg')}
print('$1', '$2', json.dumps(d, separators=(',',':')), file=open('$out','a'))
print('$1', '$2', ' '.join('%s=%.4g' % kv for kv in short.items()))"
}
floor() {
  "$peer" fsync --dir "$tmp/broker" --size 100 --count 5000 --json --histogram | line "fdatasync-100B" disk
}
log "# e2e latency, metaq vs Redis Streams, $(date -u +%FT%TZ), $(nproc) cores, rate $RATE/s, $DURATION per run; load $(cut -d' ' -f1-3 /proc/loadavg)"
log "# metaq=$metaq; redis $(redis-server --version 2>/dev/null | cut -d' ' -f3 || echo none)"
floor
# Warm-up, not recorded: the first put creates the partition (directories,
# fsyncs), Redis creates its AOF, and every client connects for the first time.
for topic in lat1 lat4; do
  "$metaq" bench e2e --zk "$zk" --topic $topic --rate "$RATE" --duration 1s --json >/dev/null 2>&1
done
if [ $redis = yes ]; then
  for port in "$rmem" "$raof"; do "$peer" redis-e2e --addr "127.0.0.1:$port" --rate "$RATE" --duration 1s --json >/dev/null; done
fi
for run in $(seq 1 "$RUNS"); do
  for size in $SIZES; do
    label="e2e-${size}B"
    "$peer" fsync --dir "$tmp/broker" --rate "$RATE" --duration "$DURATION" --size "$size" --json --histogram |
      line "$label" floor-group-commit
    "$metaq" bench e2e --zk "$zk" --topic lat1 --rate "$RATE" --duration "$DURATION" --size "$size" --json --histogram 2>/dev/null |
      line "$label" metaq-1p
    "$metaq" bench e2e --zk "$zk" --topic lat4 --rate "$RATE" --duration "$DURATION" --size "$size" --json --histogram 2>/dev/null |
      line "$label" metaq-4p
    if [ $redis = yes ]; then
      "$peer" redis-e2e --addr "127.0.0.1:$rmem" --rate "$RATE" --duration "$DURATION" --size "$size" --json --histogram |
        line "$label" redis
      "$peer" redis-e2e --addr "127.0.0.1:$raof" --rate "$RATE" --duration "$DURATION" --size "$size" --json --histogram |
        line "$label" redis-aof-always
    fi
  done
  log "# run $run done, load $(cut -d' ' -f1-3 /proc/loadavg)"
done
floor
log "# medians (min..max) and the distribution of each system's median-p99 run"
python3 scripts/bench-latency-summary.py "$out" | tee -a "$out"
log "# results in $out"
