#!/usr/bin/env bash
# Idle cost of a replicated pair with many partitions (default 10,000): the
# real `metaq broker` binary as master and as a sync slave (`masterAddr`, no
# ZooKeeper), one topic of N partitions with two 100 B messages each
# (written by `metaq bench produce --partitions-spread N`), then, once the
# slave has everything, each process's CPU over IDLE_S seconds (clock ticks
# from /proc/PID/stat) and RSS. Measurement only: nothing is asserted.
#
# The follower's long polls and its reads of the partition list are what an
# idle pair does; METAQ_B runs a second binary (e.g. an older build) in the
# same way right after, so that two builds are compared in one window.
#
#   scripts/bench-idle-replicated.sh
#   PARTS=10000 IDLE_S=20 RUNS=3 METAQ=bin/metaq METAQ_B=/tmp/metaq-old scripts/bench-idle-replicated.sh
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
PARTS=${PARTS:-10000}
IDLE_S=${IDLE_S:-20}
SETTLE_S=${SETTLE_S:-5} # after the slave has everything, before measuring (the write-back and the last fetches end)
RUNS=${RUNS:-1}
METAQ=${METAQ:-bin/metaq}
if [ "$METAQ" = bin/metaq ]; then go build -o bin/metaq ./tools/metaq; fi
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_mib() { awk '/VmRSS/{printf "%.0f", $2/1024}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
mkdir -p docs/bench
out=docs/bench/idle-replicated-$(date -u +%Y%m%dT%H%MZ).txt
echo "# idle replicated pair $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $PARTS partitions, ${IDLE_S}s idle" | tee "$out"

one() { # binary label
  local bin=$1 label=$2 dir mp sp m s
  dir=$(mktemp -d -p "$tmp")
  mp=$(free_port) sp=$(free_port)
  printf '[system]\nbrokerId=0\nserverPort=%s\nhostName=127.0.0.1\ndataPath=%s/m\nnumPartitions=1\n[zookeeper]\nzk.zkEnable=false\n[topic=t]\nnumPartitions=%s\n' \
    "$mp" "$dir" "$PARTS" >"$dir/m.ini"
  printf '[system]\nbrokerId=0\nserverPort=%s\nhostName=127.0.0.1\ndataPath=%s/s\nnumPartitions=1\n[zookeeper]\nzk.zkEnable=false\n[replication]\nslaveId=1\nmasterAddr=127.0.0.1:%s\n[topic=t]\nnumPartitions=%s\n' \
    "$sp" "$dir" "$mp" "$PARTS" >"$dir/s.ini"
  "$bin" broker -c "$dir/m.ini" --listen "127.0.0.1:$mp" >"$dir/m.log" 2>&1 &
  m=$!; pids+=("$m")
  for _ in $(seq 1 400); do "$bin" healthcheck --broker "127.0.0.1:$mp" >/dev/null 2>&1 && break; sleep 0.05; done
  "$bin" broker -c "$dir/s.ini" --listen "127.0.0.1:$sp" >"$dir/s.log" 2>&1 &
  s=$!; pids+=("$s")
  for _ in $(seq 1 400); do "$bin" healthcheck --broker "127.0.0.1:$sp" >/dev/null 2>&1 && break; sleep 0.05; done
  "$bin" bench produce --broker "127.0.0.1:$mp" --topic t --partitions-spread "$PARTS" --messages $((PARTS * 2)) \
    --size 100 --connections 2 --json >/dev/null
  # The slave has everything once its total equals the master's.
  for _ in $(seq 1 600); do
    a=$("$bin" stats "127.0.0.1:$mp" 2>/dev/null | awk '$1=="total_messages"{print $2}')
    b=$("$bin" stats "127.0.0.1:$sp" 2>/dev/null | awk '$1=="total_messages"{print $2}')
    [ -n "$a" ] && [ "$a" = "$b" ] && break
    sleep 0.1
  done
  local m0 s0 m1 s1
  sleep "$SETTLE_S"
  m0=$(ticks "$m") s0=$(ticks "$s")
  sleep "$IDLE_S"
  m1=$(ticks "$m") s1=$(ticks "$s")
  python3 -c "import sys; h,i=$hz,$IDLE_S; print('%s: master %.2f%% slave %.2f%% of a core, RSS %s / %s MiB (total_messages %s / %s)' % ('$label', ($m1-$m0)/h/i*100, ($s1-$s0)/h/i*100, '$(rss_mib "$m")', '$(rss_mib "$s")', '$a', '$b'))" | tee -a "$out"
  kill -TERM "$s" "$m"
  wait "$s" "$m" 2>/dev/null || true
}

for r in $(seq 1 "$RUNS"); do
  one "$METAQ" "run $r $METAQ"
  if [ -n "${METAQ_B:-}" ]; then one "$METAQ_B" "run $r $METAQ_B"; fi
done
echo "# results in $out"
