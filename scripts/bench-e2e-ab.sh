#!/usr/bin/env bash
# Before/after end-to-end latency of two metaq builds on the same machine in
# the same minutes: `metaq bench e2e --rate 10000 --size 100` on a topic of
# 1 partition (lat1) and of 4 (lat4), each build's broker with its own
# client, alternating A and B for ROUNDS rounds (one ZooKeeper, a fresh
# broker and data directory per run). Prints one line per run: p50, p99,
# p99.9 (ms) and the client's CPU per message (µs). Measurement only.
#
#   scripts/bench-e2e-ab.sh OLD_BIN NEW_BIN [ROUNDS]
#   A_INI=/tmp/old-server.ini scripts/bench-e2e-ab.sh /tmp/old-metaq bin/metaq 3
#
# A_INI / B_INI: the server.ini each build reads (default conf/server.ini;
# an older build may not know keys added since: give it its own, e.g.
# `git show <commit>:conf/server.ini > /tmp/old-server.ini`).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
A=$1 B=$2 R=${3:-3}
A_INI=${A_INI:-conf/server.ini} B_INI=${B_INI:-conf/server.ini}
tmp=$(mktemp -d)
fp() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export METAQ_DATA=$tmp METAQ_ZK_PORT=$(fp)
zk=127.0.0.1:$METAQ_ZK_PORT
bpid=
cleanup() { [ -n "$bpid" ] && kill "$bpid" 2>/dev/null; wait 2>/dev/null; scripts/zk.sh stop >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
scripts/zk.sh start >/dev/null
echo "# e2e A/B $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg): A=$A ($A_INI), B=$B ($B_INI)"
for r in $(seq 1 "$R"); do
  for lab in A B; do
    bin=$A ini=$A_INI
    if [ "$lab" = B ]; then bin=$B ini=$B_INI; fi
    bport=$(fp)
    { cat "$ini"; printf '\n[topic=lat1]\nnumPartitions=1\n[topic=lat4]\nnumPartitions=4\n'; } >"$tmp/b.ini"
    METAQ_SYSTEM_BROKERID=0 METAQ_SYSTEM_SERVERPORT=$bport METAQ_SYSTEM_HOSTNAME=127.0.0.1 \
      METAQ_SYSTEM_DATAPATH=$tmp/broker-$r-$lab METAQ_ZOOKEEPER_ZKCONNECT=$zk \
      "$bin" broker -c "$tmp/b.ini" --listen 127.0.0.1:$bport >"$tmp/broker.log" 2>&1 &
    bpid=$!
    for _ in $(seq 1 200); do "$bin" healthcheck --broker 127.0.0.1:$bport >/dev/null 2>&1 && break; sleep 0.05; done
    for t in lat1 lat4; do # until the topic is registered and the group's offsets are set
      for _ in $(seq 1 100); do "$bin" bench e2e --zk "$zk" --topic $t --rate 10000 --duration 1s --json >/dev/null 2>&1 && break; sleep 0.1; done
    done
    for t in lat1 lat4; do
      "$bin" bench e2e --zk "$zk" --topic $t --rate 10000 --duration "${DUR:-5s}" --size 100 --json |
        python3 -c "import json,sys; d=json.load(sys.stdin); print('$lab', '$t', 'p50 %.2f p99 %.2f p999 %.2f cpu %.1f' % (d['p50_us']/1000, d['p99_us']/1000, d['p999_us']/1000, d['cpu_us_per_msg']))"
    done
    kill "$bpid"; wait "$bpid" || true; bpid=
  done
done
