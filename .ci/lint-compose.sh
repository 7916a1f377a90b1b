#!/usr/bin/env bash
# Validate docker/compose.yaml without a container engine: Debian's
# docker-compose (1.29, Python) parses, interpolates and schema-checks the file
# with `config -q` and needs no Docker daemon for that. The topology itself
# (3 ZooKeeper ids, ZOO_SERVERS, broker ids, health checks, volumes, non-root
# user) is checked by tools/metaq/ops_compose_test.go, which needs no install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v docker-compose >/dev/null 2>&1; then
  echo "lint-compose: installing docker-compose from the Debian packages..." >&2
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi
docker-compose -f docker/compose.yaml config -q
echo "lint-compose: docker/compose.yaml is valid"
