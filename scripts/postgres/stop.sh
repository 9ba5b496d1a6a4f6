#!/usr/bin/env bash
# Stop a test server started by scripts/postgres/start.sh DIR (fast mode:
# open sessions are disconnected). Stopping a server that is not running is
# not an error. DIR itself is left in place; remove it when done.
set -euo pipefail

die() { echo "postgres/stop.sh: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 DIR"
DIR=$(cd "$1" && pwd)
DATA="$DIR/data"
[[ -f "$DATA/PG_VERSION" ]] || die "$DATA is not a PostgreSQL cluster (was it created by start.sh?)"

BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[[ -n "$BIN" && -x "$BIN/pg_ctl" ]] || die "pg_ctl not found under /usr/lib/postgresql/*/bin"

OWNER=$(stat -c %U "$DATA")
if [[ $(id -u) -eq 0 && "$OWNER" != root ]]; then
	as_pg() { runuser -u "$OWNER" -- "$@"; }
else
	as_pg() { "$@"; }
fi

if ! as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
	echo "postgres/stop.sh: not running ($DATA)" >&2
	exit 0
fi
as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
echo "postgres/stop.sh: stopped ($DATA)" >&2
