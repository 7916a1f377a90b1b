#!/usr/bin/env bash
# Start-up and idle cost of a broker with many partitions (default 10,000),
# also right after kill -9 under load (the commit log's replay):
# the real `metaq broker` binary without ZooKeeper, one topic of N
# partitions with one 100 B message each (written by `metaq bench produce
# --partitions-spread N`). Prints the time from exec to the first successful
# healthcheck after a clean shutdown (SIGTERM) and after kill -9, and the
# broker's idle CPU (from /proc over IDLE_S seconds: clock ticks of the
# process, and the nanoseconds of its threads from /proc/PID/task/*/schedstat),
# its wake-ups per second (context switches of all its threads) and RSS.
# Measurement only: nothing is asserted.
#
# ZK=host:port runs the broker with ZooKeeper there (its own root), to see
# what the session and the registrations add to the idle cost.
#
#   scripts/bench-startup.sh
#   PARTS=10000 IDLE_S=20 METAQ=bin/metaq scripts/bench-startup.sh
#   PARTS=1 IDLE_S=60 ZK=127.0.0.1:2181 METAQ=bin/metaq scripts/bench-startup.sh
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
PARTS=${PARTS:-10000}
IDLE_S=${IDLE_S:-20}
METAQ=${METAQ:-bin/metaq}
if [ "$METAQ" = bin/metaq ]; then go build -o bin/metaq ./tools/metaq; fi
tmp=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
bport=$(free_port)
cleanup() { [ -n "${bpid:-}" ] && kill -9 "$bpid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
cfg=$tmp/b.ini
zkconf='zk.zkEnable=false'
if [ -n "${ZK:-}" ]; then zkconf=$(printf 'zk.zkEnable=true\nzk.zkConnect=%s\nzk.zkRoot=/bench-startup-%s' "$ZK" "$$"); fi
printf '[system]\nbrokerId=0\nserverPort=%s\nhostName=127.0.0.1\ndataPath=%s/data\nnumPartitions=1\n[zookeeper]\n%s\n[topic=many]\nnumPartitions=%s\n' \
  "$bport" "$tmp" "$zkconf" "$PARTS" >"$cfg"
ticks=$(getconf CLK_TCK)
now() { date +%s.%N; }
start() { # $1 = label; prints the seconds from exec to the first good healthcheck
  local t0 t1
  t0=$(now)
  "${BROKER:-$METAQ}" broker -c "$cfg" --listen 127.0.0.1:$bport >>"$tmp/broker.log" 2>&1 &
  bpid=$!
  until "$METAQ" healthcheck --broker 127.0.0.1:$bport >/dev/null 2>&1; do
    kill -0 "$bpid" 2>/dev/null || { echo "broker exited:"; tail "$tmp/broker.log"; exit 1; }
    sleep 0.02
  done
  t1=$(now)
  python3 -c "print(f'$1: {$t1-$t0:.2f} s')"
}
# cpu_ns / switches: CPU nanoseconds and context switches summed over the
# broker's threads (threads do not come and go in an idle broker).
cpu_ns() { cat /proc/$bpid/task/*/schedstat 2>/dev/null | awk '{s+=$1} END{printf "%.0f", s}'; }
switches() { cat /proc/$bpid/task/*/status 2>/dev/null | awk '/ctxt_switches/{s+=$2} END{printf "%.0f", s}'; }
idle() {
  local c0 c1 n0 n1 w0 w1
  sleep 2
  c0=$(awk '{print $14+$15}' /proc/$bpid/stat); n0=$(cpu_ns); w0=$(switches)
  sleep "$IDLE_S"
  c1=$(awk '{print $14+$15}' /proc/$bpid/stat); n1=$(cpu_ns); w1=$(switches)
  python3 -c "print(f'idle CPU {($c1-$c0)/$ticks/$IDLE_S*100:.2f}% of one core over ${IDLE_S}s')"
  python3 -c "print(f'idle CPU (schedstat) {($n1-$n0)/1e9/$IDLE_S*100:.3f}% of one core, {($w1-$w0)/$IDLE_S:.1f} wake-ups/s (context switches, all threads)')"
  echo "RSS $(awk '/VmRSS/{printf "%.0f MiB", $2/1024}' /proc/$bpid/status), threads $(awk '/Threads/{print $2}' /proc/$bpid/status), fds $(ls /proc/$bpid/fd | wc -l)"
}
echo "# metaq start-up benchmark $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $PARTS partitions${ZK:+, ZooKeeper $ZK}"
start "first start (empty data directory)"
"$METAQ" bench produce --broker 127.0.0.1:$bport --topic many --partitions-spread "$PARTS" --messages "$PARTS" --size 100 --connections 4 --json >/dev/null
echo "data: $(find "$tmp/data" -maxdepth 1 -type d -name 'many-*' | wc -l) partition directories, $(du -sh "$tmp/data" | cut -f1)"
idle
t0=$(now); kill -TERM "$bpid"; wait "$bpid" || true
python3 -c "print(f'clean shutdown: {$(now)-$t0:.2f} s')"
start "start after clean shutdown"
idle
kill -9 "$bpid"; wait "$bpid" 2>/dev/null || true
start "start after kill -9"
idle
# kill -9 right after a produce over every partition: the start replays the
# commit log (broker/store doc.go) into the segments and syncs them first.
"$METAQ" bench produce --broker 127.0.0.1:$bport --topic many --partitions-spread "$PARTS" --messages $((PARTS * 20)) --size 100 --connections 4 --json >/dev/null
kill -9 "$bpid"; wait "$bpid" 2>/dev/null || true
start "start after kill -9 right after a produce of $((PARTS * 20)) messages"
grep -o 'msg="store: commit log replayed".*' "$tmp/broker.log" | tail -1 || echo "(no commit log to replay)"
idle
kill -TERM "$bpid"; wait "$bpid" || true; bpid=
