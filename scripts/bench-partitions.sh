#!/usr/bin/env bash
# Produce rate and latency against one broker as the partitions a run spreads
# over grow: `metaq bench produce`, 100 B, 4 connections, 1 / 100 / 1,000
# partitions, the same flags and the same broker process for every case, RUNS
# times each (quote the median and min..max). The broker runs without
# ZooKeeper (direct mode), group commit (every ack after its fsync); its CPU per
# message is read from its admin /metrics by `--admin`.
#
#   scripts/bench-partitions.sh
#   MESSAGES=4000000 RUNS=3 PARTS="1 100 1000" METAQ=bin/metaq scripts/bench-partitions.sh
#   NOSYNC=1 scripts/bench-partitions.sh   # the bound without durability: threshold
#                                          # mode, acks after the write, no fsync at all
#   NOWRITE=1 scripts/bench-partitions.sh  # the bound with no storage cost at all: the
#                                          # broker built with -tags metaq_nowrite (group
#                                          # commit without writes or commits, acks from
#                                          # memory; broker/store/nowrite_on.go); alternate
#                                          # it with a normal run to compare with 1 partition
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# 4,000,000 messages per run by default: shorter runs end before the commit
# log's checkpoints and the kernel's write-back of the segments, and
# overstate the many-partition rates (docs/BENCHMARKS.md, fourth round).
MESSAGES=${MESSAGES:-4000000}
RUNS=${RUNS:-3}
PARTS=${PARTS:-"1 100 1000"}
METAQ=${METAQ:-bin/metaq}
EXTRA_INI=${EXTRA_INI:-}
unflush='unflushThreshold=0'
if [ -n "${NOSYNC:-}" ]; then unflush='unflushThreshold=1000000\nunflushInterval=100000'; fi
if [ "$METAQ" = bin/metaq ]; then go build -o bin/metaq ./tools/metaq; fi
tmp=$(mktemp -d)
if [ -n "${NOWRITE:-}" ]; then
  go build -tags metaq_nowrite -o "$tmp/metaq-nowrite" ./tools/metaq
  BROKER=$tmp/metaq-nowrite
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
bport=$(free_port)
aport=$(free_port)
cleanup() { [ -n "${bpid:-}" ] && kill "$bpid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
echo "# metaq partitions benchmark${NOSYNC:+ (NOSYNC: no fsync, acks after the write)}${NOWRITE:+ (NOWRITE: broker built with -tags metaq_nowrite: no segment writes, no commit)} $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $MESSAGES messages, binary $METAQ"
echo "# disk: $(dd if=/dev/zero of="$tmp/dd" bs=1M count=256 conv=fdatasync 2>&1 | tail -1)"; rm -f "$tmp/dd"
cfg=$tmp/bench.ini
{
  printf '[system]\nbrokerId=0\nserverPort=%s\nhostName=127.0.0.1\ndataPath=%s/data\nnumPartitions=1\n'"$unflush"'\nadminPort=%s\n%s\n' \
    "$bport" "$tmp" "$aport" "$EXTRA_INI"
  printf '[zookeeper]\nzk.zkEnable=false\n'
  for n in $PARTS; do printf '[topic=p%s]\nnumPartitions=%s\n' "$n" "$n"; done
} >"$cfg"
"${BROKER:-$METAQ}" broker -c "$cfg" --listen 127.0.0.1:$bport >"$tmp/broker.log" 2>&1 &
bpid=$!
for _ in $(seq 1 400); do "$METAQ" healthcheck --broker 127.0.0.1:$bport >/dev/null 2>&1 && break; sleep 0.05; done
for run in $(seq 1 "$RUNS"); do
  for n in $PARTS; do
    json=$(nice -n 0 "$METAQ" bench produce --broker 127.0.0.1:$bport --topic "p$n" --partitions-spread "$n" \
      --messages "$MESSAGES" --size 100 --connections 4 --admin 127.0.0.1:$aport --json | tr -d '\n ')
    echo "partitions=$n run=$run $json"
  done
done
echo "# summary (median and min..max over $RUNS runs)"
