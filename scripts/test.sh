#!/usr/bin/env bash
# The whole test suite: lint (gofmt, go vet, go.mod tidy, staticcheck), then
# every package's tests with the race detector against real ZooKeeper servers
# (each test package starts its own on a free loopback port). Installs
# ZooKeeper, PostgreSQL and Chromium from the Debian packages if missing.
#
# Extra arguments go to `go test` (e.g. scripts/test.sh -run Mutex ./zkrecipes/);
# the lint steps always cover the whole module.
#
# METAQ_STATICCHECK: fail (findings fail the run; the default), warn (findings
# are printed, the run goes on), off (skip the step).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# staticcheck 2026.2.2, pinned: installed from the Go module proxy into bin/
# (git-ignored); later runs find it in Go's build cache.
STATICCHECK=honnef.co/go/tools/cmd/staticcheck@v0.8.2

scripts/zk.sh install
scripts/pg.sh install

# Headless Chromium for the dashboard's browser test (TestDashboardInBrowser
# in tools/metaq); with METAQ_REQUIRE_BROWSER set that test fails instead of
# skipping when the browser cannot start.
if ! command -v chromium >/dev/null 2>&1; then
  echo "test.sh: installing Chromium from the Debian packages (apt-get install chromium)..." >&2
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export METAQ_REQUIRE_BROWSER=1

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.data/*'))
if [ -n "$unformatted" ]; then
  echo "test.sh: gofmt would change:" >&2; echo "$unformatted" >&2; exit 1
fi
go vet ./...
go vet -tags metaq_nowrite ./broker/store/ # the benchmark-only build (broker/store/nowrite_on.go) keeps compiling

if ! tidy=$(go mod tidy -diff 2>&1); then
  echo "test.sh: go.mod/go.sum are not tidy; run 'go mod tidy' and commit the result:" >&2
  echo "$tidy" >&2; exit 1
fi

# ./... is this module only: third_party/ is a module of its own (a replace).
case "${METAQ_STATICCHECK:-fail}" in
  off) ;;
  fail|warn)
    GOBIN="$PWD/bin" go install "$STATICCHECK"
    if ! bin/staticcheck ./...; then
      [ "${METAQ_STATICCHECK:-fail}" = fail ] && exit 1
      echo "test.sh: staticcheck found the problems above (not fatal while METAQ_STATICCHECK=warn)" >&2
    fi ;;
  *) echo "test.sh: METAQ_STATICCHECK=$METAQ_STATICCHECK: want fail, warn or off" >&2; exit 2 ;;
esac

if [ $# -eq 0 ]; then set -- ./...; fi
# -p 2: two packages at a time on a 2-core machine keeps ZooKeeper JVMs from starving.
go test -race -count=1 -p 2 -timeout 30m "$@"
