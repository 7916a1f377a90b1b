#!/usr/bin/env bash
# Runs the README's quick start and tutorial end to end on free ports in a
# temp data dir: cluster.sh start, produce, consume, lag, reset offsets (dry
# run, then --execute), consume again, cluster.sh stop. CI runs it after the
# test suite; it fails on the first step whose output is not what the README shows.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export METAQ_DATA=$(mktemp -d) METAQ_ZK_PORT=$(free_port) METAQ_BROKER_PORT=$(free_port)
export METAQ_ZK=127.0.0.1:$METAQ_ZK_PORT
trap 'scripts/cluster.sh stop >/dev/null 2>&1 || true; rm -rf "$METAQ_DATA"' EXIT
step() { echo "quickstart: $*" >&2; }
expect() { # expect <pattern> <text>
  if ! grep -qE -- "$1" <<<"$2"; then echo "quickstart: expected /$1/ in:" >&2; echo "$2" >&2; exit 1; fi
}

step "start the cluster"
scripts/cluster.sh start >/dev/null
step "produce three messages"
out=$(printf 'hello\nworld\nagain\n' | bin/metaq produce --topic test)
expect '^partition 0-0 offset 0$' "$out"
expect '^partition 0-0 offset 50$' "$out"
step "consume two as group g1"
out=$(bin/metaq consume --group g1 --topic test --max 2)
expect 'offset 0: hello' "$out"
expect 'offset 25: world' "$out"
step "lag"
out=$(bin/metaq groups describe g1 -o json)
expect '"committed": 50' "$out"
expect '"log_end": 75' "$out"
expect '"lag": 25' "$out"
step "dashboard and top show the same lag"
dash_port=$(free_port)
bin/metaq dashboard --listen 127.0.0.1:$dash_port --interval 500ms >/dev/null 2>&1 &
dash_pid=$!
trap 'kill $dash_pid 2>/dev/null || true; scripts/cluster.sh stop >/dev/null 2>&1 || true; rm -rf "$METAQ_DATA"' EXIT
for _ in $(seq 1 100); do
  out=$(curl -fsS -H 'Accept: application/json' "http://127.0.0.1:$dash_port/groups/g1" 2>/dev/null || true)
  grep -q '"lag": 25' <<<"$out" && break
  sleep 0.2
done
expect '"committed": 50' "$out"
expect '"lag": 25' "$out"
expect '<title>Cluster' "$(curl -fsS "http://127.0.0.1:$dash_port/")"
kill $dash_pid
out=$(bin/metaq top --once --interval 200ms)
expect '^g1 +25 ' "$out"
step "reset offsets: dry run writes nothing"
out=$(bin/metaq groups reset-offsets g1 --topic test --to-earliest)
expect 'Dry run' "$out"
expect '"committed": 50' "$(bin/metaq groups describe g1 -o json)"
step "reset offsets: --execute"
bin/metaq groups reset-offsets g1 --topic test --to-earliest --execute >/dev/null
out=$(bin/metaq consume --group g1 --topic test --max 3)
expect 'offset 0: hello' "$out"
expect 'offset 50: again' "$out"
step "stop"
scripts/cluster.sh stop >/dev/null
echo "quickstart: ok" >&2
