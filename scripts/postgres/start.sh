#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for tests.
#
#   scripts/postgres/start.sh DIR
#
# Everything lives under DIR: the cluster (DIR/data), its log (DIR/postgres.log)
# and its unix socket. The server listens on 127.0.0.1 only, on a free port,
# with fsync off (fast, and NOT crash safe: tests only). When it is up, DIR/env
# holds KEY=VALUE lines (shell-sourceable, no quoting needed):
#
#   LOOPGATE_TEST_POSTGRES_DSN=postgres://loopgate:PASSWORD@127.0.0.1:PORT/loopgate?sslmode=disable
#   LOOPGATE_TEST_POSTGRES_VERSION=15.18
#   LOOPGATE_TEST_POSTGRES_PORT=PORT
#   LOOPGATE_TEST_POSTGRES_DIR=DIR
#
# The role "loopgate" owns database "loopgate" and has CREATEDB, so test
# harnesses (internal/testpg) can create a fresh database per test.
#
# If PostgreSQL is not installed it is installed from the Debian packages
# (needs root and a reachable apt mirror). PostgreSQL refuses to run as root,
# so when run as root the server runs as the "postgres" system user (created
# if missing) and DIR is handed to that user. Running the script again on a
# DIR whose server is up only rewrites DIR/env; on a stopped one it restarts
# it. Stop with scripts/postgres/stop.sh DIR.
set -euo pipefail

die() { echo "postgres/start.sh: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 DIR"
mkdir -p "$1"
DIR=$(cd "$1" && pwd)
DATA="$DIR/data"
LOG="$DIR/postgres.log"

# --- 1. PostgreSQL binaries -------------------------------------------------
find_bindir() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
	if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
		echo "$d"
	fi
}
BIN=$(find_bindir)
if [[ -z "$BIN" ]]; then
	[[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb) and installing it needs root: run 'apt-get install -y postgresql' as root"
	command -v apt-get >/dev/null || die "PostgreSQL is not installed and apt-get is missing: install PostgreSQL (initdb, pg_ctl, psql) by hand"
	echo "postgres/start.sh: installing PostgreSQL from Debian packages..." >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2 || die "apt-get update failed: is a Debian mirror reachable?"
	apt-get install -y -qq --no-install-recommends postgresql >&2 || die "apt-get install postgresql failed (see output above)"
	BIN=$(find_bindir)
	[[ -n "$BIN" ]] || die "postgresql installed but no /usr/lib/postgresql/*/bin/initdb found"
fi

# --- 2. The OS user the server runs as ---------------------------------------
if [[ $(id -u) -eq 0 ]]; then
	RUNAS=postgres
	if ! id "$RUNAS" >/dev/null 2>&1; then
		useradd --system --home-dir /var/lib/postgresql --shell /bin/sh "$RUNAS" ||
			die "cannot create the '$RUNAS' OS user that PostgreSQL must run as"
	fi
	command -v runuser >/dev/null || die "runuser (util-linux) is missing: needed to run PostgreSQL as '$RUNAS'"
	chown "$RUNAS" "$DIR"
	as_pg() { runuser -u "$RUNAS" -- "$@"; }
else
	RUNAS=$(id -un)
	as_pg() { "$@"; }
fi
chmod 700 "$DIR"
# The server user must be able to reach DIR.
as_pg test -w "$DIR" || die "user '$RUNAS' cannot write $DIR: choose a DIR whose parents it can traverse (e.g. under /tmp)"

psql_admin() {
	as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres -d postgres "$@"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
	local p i
	for i in $(seq 1 50); do
		p=$((20000 + RANDOM % 40000))
		if ! port_in_use "$p"; then
			echo "$p"
			return 0
		fi
	done
	die "no free TCP port found on 127.0.0.1"
}

# --- 3. initdb (first run only) ------------------------------------------------
if [[ ! -f "$DATA/PG_VERSION" ]]; then
	PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	as_pg "$BIN/initdb" -D "$DATA" -U postgres -E UTF8 --no-locale \
		--auth-local=trust --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1 ||
		die "initdb failed, see $DIR/initdb.log"
	as_pg sh -c "umask 077; echo '$PASSWORD' > '$DIR/password'"
	cat >>"$DATA/postgresql.conf" <<CONF

# --- loopgate test server (scripts/postgres/start.sh): throwaway, NOT crash safe
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 64MB
CONF
	FRESH=1
else
	FRESH=0
	PASSWORD=$(cat "$DIR/password")
fi

# --- 4. Start (retrying on a port taken between the check and the bind) -----
if as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
	PORT=$(sed -n 4p "$DATA/postmaster.pid")
else
	started=0
	for attempt in 1 2 3 4 5; do
		PORT=$(free_port)
		if as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 -o "-p $PORT" start >/dev/null; then
			started=1
			break
		fi
		echo "postgres/start.sh: start on port $PORT failed (attempt $attempt), retrying" >&2
	done
	[[ $started -eq 1 ]] || die "PostgreSQL did not start, see $LOG"
fi

# --- 5. Role and database (first run only) -----------------------------------
if [[ $FRESH -eq 1 ]]; then
	psql_admin -c "CREATE ROLE loopgate LOGIN CREATEDB PASSWORD '$PASSWORD'" \
		-c "CREATE DATABASE loopgate OWNER loopgate" ||
		die "could not create role/database loopgate, see $LOG"
fi

VERSION=$(psql_admin -At -c "SHOW server_version" | awk '{print $1}')
DSN="postgres://loopgate:$PASSWORD@127.0.0.1:$PORT/loopgate?sslmode=disable"
{
	echo "LOOPGATE_TEST_POSTGRES_DSN=$DSN"
	echo "LOOPGATE_TEST_POSTGRES_VERSION=$VERSION"
	echo "LOOPGATE_TEST_POSTGRES_PORT=$PORT"
	echo "LOOPGATE_TEST_POSTGRES_DIR=$DIR"
} >"$DIR/env.tmp"
mv "$DIR/env.tmp" "$DIR/env"
echo "postgres/start.sh: PostgreSQL $VERSION ready on 127.0.0.1:$PORT (env in $DIR/env)" >&2
