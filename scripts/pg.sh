#!/usr/bin/env bash
# PostgreSQL for the tests of examples/pgxa (internal/pgtest starts its own
# throw-away server from these binaries; nothing runs as a service).
#
#   scripts/pg.sh install   install Debian's postgresql package if its binaries are missing
#   scripts/pg.sh bindir    print the newest /usr/lib/postgresql/*/bin
set -euo pipefail

bindir() {
  local d best="" v bestv=0
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/postgres" ] || continue
    v=$(basename "$(dirname "$d")"); v=${v%%.*}
    if [ "$v" -gt "$bestv" ] 2>/dev/null; then best=$d; bestv=$v; fi
  done
  [ -n "$best" ] && echo "$best"
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "pg.sh: need root to run: $*  (install sudo or run as root)" >&2; exit 1
  fi
}

install() {
  if bindir >/dev/null && getent passwd postgres >/dev/null && command -v runuser >/dev/null; then return 0; fi
  echo "pg.sh: installing PostgreSQL from the Debian packages (apt-get install postgresql)..." >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  bindir >/dev/null || { echo "pg.sh: postgresql installed but no /usr/lib/postgresql/*/bin/initdb" >&2; exit 1; }
}

case "${1:-install}" in
  install) install ;;
  bindir) bindir || { echo "pg.sh: no PostgreSQL binaries (run $0 install)" >&2; exit 1; } ;;
  *) echo "usage: $0 install|bindir" >&2; exit 2 ;;
esac
