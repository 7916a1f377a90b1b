#!/usr/bin/env bash
# The cost of security: `metaq bench produce`, 100 B, the same broker process
# for both cases, alternating RUNS times:
#   plain — its plaintextPort, no TLS, no auth (principal "anonymous");
#   tls   — its serverPort, TLS 1.3 (self-made CA) and SCRAM-SHA-256 auth.
# The broker runs without ZooKeeper, acking after fsync. Prints every run and
# the medians with the ratio tls/plain (issue 13 asks for >= 70%).
#
#   scripts/bench-security.sh
#   MESSAGES=500000 RUNS=5 CONNECTIONS=4 scripts/bench-security.sh
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
MESSAGES=${MESSAGES:-300000}
RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-4}
METAQ=${METAQ:-bin/metaq}
if [ "$METAQ" = bin/metaq ]; then go build -o bin/metaq ./tools/metaq; fi
tmp=$(mktemp -d)
chmod 0750 "$tmp"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
bport=$(free_port); pport=$(free_port)
cleanup() { [ -n "${bpid:-}" ] && kill "$bpid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# A CA and the broker's certificate for 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
  -keyout "$tmp/ca-key.pem" -out "$tmp/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=broker \
  -keyout "$tmp/broker-key.pem" -out "$tmp/broker.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$tmp/ext"
openssl x509 -req -in "$tmp/broker.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca-key.pem" -CAcreateserial \
  -days 1 -extfile "$tmp/ext" -out "$tmp/broker.pem" 2>/dev/null
chmod 0600 "$tmp"/*-key.pem
# A user; its password in a private file.
head -c 18 /dev/urandom | base64 >"$tmp/password"; chmod 0600 "$tmp/password"
"$METAQ" users add bench --users-file "$tmp/users.yaml" --password-file "$tmp/password" >/dev/null

cfg=$tmp/bench.ini
printf '[system]\nbrokerId=0\nserverPort=%s\nhostName=127.0.0.1\ndataPath=%s/data\nnumPartitions=1\nunflushThreshold=0\n' "$bport" "$tmp" >"$cfg"
printf '[zookeeper]\nzk.zkEnable=false\n' >>"$cfg"
printf '[security]\ntls.certFile=%s/broker.pem\ntls.keyFile=%s/broker-key.pem\nplaintextPort=%s\nusersFile=%s/users.yaml\nallowAnonymous=true\n' \
  "$tmp" "$tmp" "$pport" "$tmp" >>"$cfg"
printf '[topic=bench]\n' >>"$cfg"
"$METAQ" broker -c "$cfg" --listen 127.0.0.1:$bport >"$tmp/broker.log" 2>&1 &
bpid=$!
for _ in $(seq 1 400); do "$METAQ" healthcheck --broker 127.0.0.1:$pport >/dev/null 2>&1 && break; sleep 0.05; done

echo "# metaq security benchmark $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $MESSAGES x 100 B, $CONNECTIONS connections"
plain=(); tls=()
for run in $(seq 1 "$RUNS"); do
  p=$("$METAQ" bench produce --broker 127.0.0.1:$pport --topic bench --messages "$MESSAGES" --size 100 --connections "$CONNECTIONS" --json | tr -d '\n ')
  t=$("$METAQ" bench produce --broker 127.0.0.1:$bport --topic bench --messages "$MESSAGES" --size 100 --connections "$CONNECTIONS" --json \
      --tls-ca "$tmp/ca.pem" --user bench --password-file "$tmp/password" | tr -d '\n ')
  echo "plain run=$run $p"
  echo "tls+scram run=$run $t"
  plain+=("$p"); tls+=("$t")
done
python3 - "${#plain[@]}" "${plain[@]}" "${tls[@]}" <<'PY'
import json, statistics, sys
n = int(sys.argv[1]); runs = [json.loads(s) for s in sys.argv[2:]]
plain, tls = runs[:n], runs[n:]
def med(rs, k): return statistics.median(r[k] for r in rs)
rate = "msgs_per_s"
p99 = "p99_us"
for name, rs in (("plain", plain), ("tls+scram", tls)):
    line = f"{name:10s} median {med(rs, rate):,.0f} msgs/s (min {min(r[rate] for r in rs):,.0f}, max {max(r[rate] for r in rs):,.0f})"
    line += f", p99 median {med(rs, p99):,.0f} us"
    print(line)
print(f"ratio tls+scram / plain (medians): {med(tls, rate) / med(plain, rate):.0%}")
PY
