#!/usr/bin/env bash
# ZooKeeper for local development and CI, on 127.0.0.1 only.
#
#   scripts/zk.sh install   install Debian's zookeeper package if its jars are missing
#   scripts/zk.sh start     install if needed, then start a standalone server (idempotent)
#   scripts/zk.sh stop      stop the server this script started (by its PID file)
#   scripts/zk.sh status    print whether it serves
#
# Settings (environment): METAQ_ZK_PORT (default 2181), METAQ_DATA (default <repo>/.data).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data=${METAQ_DATA:-$repo/.data}
port=${METAQ_ZK_PORT:-2181}
zkdir=$data/zk
pidfile=$zkdir/zk.pid

have_jars() { [ -f /usr/share/java/zookeeper.jar ] && [ -f /usr/share/java/zookeeper-jute.jar ] && command -v java >/dev/null; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "zk.sh: need root to run: $*  (install sudo or run as root)" >&2; exit 1
  fi
}

install() {
  if have_jars; then return 0; fi
  echo "zk.sh: installing ZooKeeper from the Debian packages (apt-get install zookeeper)..." >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zookeeper >/dev/null
  have_jars || { echo "zk.sh: zookeeper installed but /usr/share/java/zookeeper.jar or java is missing" >&2; exit 1; }
}

ruok() { (exec 3<>/dev/tcp/127.0.0.1/"$port" && printf srvr >&3 && timeout 2 cat <&3) 2>/dev/null | grep -q '^Mode:'; }

classpath() {
  local j=/usr/share/java cp="" f
  for f in zookeeper zookeeper-jute netty-handler netty-common netty-buffer netty-transport netty-codec \
           netty-resolver netty-transport-native-epoll netty-transport-native-unix-common slf4j-api slf4j-nop; do
    [ -f "$j/$f.jar" ] && cp="$cp${cp:+:}$j/$f.jar"
  done
  echo "$cp"
}

start() {
  install
  if ruok; then echo "zk.sh: ZooKeeper already serving on 127.0.0.1:$port"; return 0; fi
  mkdir -p "$zkdir/data"
  cat > "$zkdir/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$zkdir/data
clientPort=$port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=*
maxClientCnxns=0
autopurge.purgeInterval=1
CFG
  nohup java -Xmx256m -Dzookeeper.jmx.log4j.disable=true -cp "$(classpath)" \
    org.apache.zookeeper.server.ZooKeeperServerMain "$zkdir/zoo.cfg" >"$zkdir/zk.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 300); do
    if ruok; then echo "zk.sh: ZooKeeper serving on 127.0.0.1:$port (pid $(cat "$pidfile"), data $zkdir)"; return 0; fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "zk.sh: ZooKeeper did not start; last lines of $zkdir/zk.log:" >&2
  tail -n 20 "$zkdir/zk.log" >&2 || true
  exit 1
}

stop() {
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")"; rm -f "$pidfile"; echo "zk.sh: stopped"
  else
    echo "zk.sh: not running (no live PID in $pidfile)"
  fi
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) if ruok; then echo "serving on 127.0.0.1:$port"; else echo "not serving on 127.0.0.1:$port"; exit 1; fi ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
