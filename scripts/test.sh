#!/usr/bin/env bash
# The whole test suite: formatting, vet, and every package's tests with the race
# detector against real ZooKeeper servers (each test package starts its own on a
# free loopback port). Installs ZooKeeper from the Debian packages if missing.
#
# Extra arguments go to `go test` (e.g. scripts/test.sh -run Mutex ./zkrecipes/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/zk.sh install
scripts/pg.sh install

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.data/*'))
if [ -n "$unformatted" ]; then
  echo "test.sh: gofmt would change:" >&2; echo "$unformatted" >&2; exit 1
fi
go vet ./...

if [ $# -eq 0 ]; then set -- ./...; fi
# -p 2: two packages at a time on a 2-core machine keeps ZooKeeper JVMs from starving.
go test -race -count=1 -p 2 -timeout 30m "$@"
