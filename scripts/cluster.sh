#!/usr/bin/env bash
# A working local cluster on this machine: ZooKeeper (installed from the Debian
# packages if missing) and one broker with its data under <repo>/.data/.
#
#   scripts/cluster.sh start    start ZooKeeper and a broker (idempotent)
#   scripts/cluster.sh stop     stop the broker and ZooKeeper this script started
#   scripts/cluster.sh status
#
# Settings (environment): METAQ_ZK_PORT (2181), METAQ_BROKER_PORT (8123),
# METAQ_CONFIG (conf/server.ini), METAQ_DATA (<repo>/.data).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
data=${METAQ_DATA:-$repo/.data}
export METAQ_DATA=$data
config=${METAQ_CONFIG:-$repo/conf/server.ini}
bport=${METAQ_BROKER_PORT:-8123}
zkport=${METAQ_ZK_PORT:-2181}
bdir=$data/broker
pidfile=$bdir/broker.pid

broker_up() { (exec 3<>/dev/tcp/127.0.0.1/"$bport" && printf 'version 1\r\n' >&3 && timeout 2 head -c 12 <&3) 2>/dev/null | grep -q '^result 200'; }

start_broker() {
  if [ ! -d "$repo/tools/metaq" ]; then
    echo "cluster.sh: the broker binary is not in this checkout yet; ZooKeeper alone is running." >&2
    return 0
  fi
  if broker_up; then echo "cluster.sh: broker already serving on 127.0.0.1:$bport"; return 0; fi
  mkdir -p "$bdir"
  go build -o "$repo/bin/metaq" ./tools/metaq
  METAQ_SYSTEM_SERVERPORT=$bport METAQ_ZOOKEEPER_ZKCONNECT=127.0.0.1:$zkport \
    METAQ_SYSTEM_DATAPATH=$bdir/data METAQ_SYSTEM_HOSTNAME=127.0.0.1 \
    nohup "$repo/bin/metaq" broker --config "$config" --listen 127.0.0.1:$bport >"$bdir/broker.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 200); do
    if broker_up; then
      echo "cluster.sh: broker serving on 127.0.0.1:$bport (pid $(cat "$pidfile"), log $bdir/broker.log)"
      return 0
    fi
    kill -0 "$(cat "$pidfile")" 2>/dev/null || break
    sleep 0.1
  done
  echo "cluster.sh: broker did not start; last lines of $bdir/broker.log:" >&2
  tail -n 20 "$bdir/broker.log" >&2 || true
  exit 1
}

case "${1:-start}" in
  start)
    scripts/zk.sh start
    start_broker
    cat <<MSG

Cluster is up: ZooKeeper 127.0.0.1:$zkport, broker meta://127.0.0.1:$bport.
Next:
  bin/metaq produce --zk 127.0.0.1:$zkport --topic test      # type lines, Ctrl-D to end
  bin/metaq consume --zk 127.0.0.1:$zkport --group g1 --topic test
  printf 'stats\r\n' | nc -q1 127.0.0.1 $bport               # raw protocol
  scripts/cluster.sh stop
MSG
    ;;
  stop)
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      pid=$(cat "$pidfile"); kill -TERM "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      rm -f "$pidfile"; echo "cluster.sh: broker stopped"
    fi
    scripts/zk.sh stop
    ;;
  status)
    scripts/zk.sh status || true
    if broker_up; then echo "broker serving on 127.0.0.1:$bport"; else echo "broker not serving on 127.0.0.1:$bport"; fi
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
