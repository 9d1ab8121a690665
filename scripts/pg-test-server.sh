#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 server for the invites-postgres tests, runs a command
# against it, and stops and deletes the server when the command ends (or the script is
# interrupted).
#
#   scripts/pg-test-server.sh                 # runs the PostgreSQL tests (the default command)
#   scripts/pg-test-server.sh -- CMD ARGS...  # runs CMD with INVITES_PG_URL exported
#   scripts/pg-test-server.sh --shell         # an interactive shell with INVITES_PG_URL set
#
# The server lives in a temporary directory, listens on a free port on 127.0.0.1 only (and on
# a unix socket in that directory), trusts local connections, and runs with `fsync=off` and
# `synchronous_commit=off`: a crash of the machine may lose its data, which is fine for a
# throwaway test server and makes commits cheap on a shared CI machine. Do not copy those two
# settings to a real server. With PG_DURABLE=1 the server keeps PostgreSQL's durable defaults
# instead (every COMMIT waits for its WAL to reach the disk), as a production server runs: the
# benches use that. `pg_stat_statements` is loaded so the benches can count the statements each
# request sends.
#
# Needs the PostgreSQL 15 server binaries (Debian/Ubuntu: `apt-get install postgresql-15`).
# Set PG_BIN to use binaries elsewhere. Run as root, the server runs as the `postgres` user.
# Exports INVITES_PG_URL (a database `invites` owned by a role `invites` that may create
# databases: the tests create one per test from a migrated template; and roles: a test logs in
# as a least-privilege role it creates and drops) and
# INVITES_REQUIRE_SERVERS=1 (so a test that cannot reach the server fails instead of
# skipping).
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
if [[ ! -x "$PG_BIN/initdb" ]]; then
    echo "pg-test-server: no PostgreSQL 15 binaries in $PG_BIN (apt-get install postgresql-15, or set PG_BIN)" >&2
    exit 2
fi

mode=test
cmd=()
case "${1:-}" in
    --) shift; mode=cmd; cmd=("$@") ;;
    --shell) mode=shell ;;
    "") ;;
    *) echo "usage: $0 [-- CMD ARGS... | --shell]" >&2; exit 2 ;;
esac

as_owner=()
dir=$(mktemp -d "${TMPDIR:-/tmp}/invites-pg.XXXXXX")
if [[ $(id -u) -eq 0 ]]; then
    # initdb and postgres refuse to run as root.
    chown postgres: "$dir"
    as_owner=(runuser -u postgres --)
fi
data="$dir/data"

stop() {
    local rc=$?
    if [[ -f "$data/postmaster.pid" ]]; then
        "${as_owner[@]}" "$PG_BIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    exit "$rc"
}
trap stop EXIT
trap 'exit 130' INT TERM

"${as_owner[@]}" "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 \
    --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
if [[ "${PG_DURABLE:-0}" == 1 ]]; then
    durability="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
fi

started=
for _ in $(seq 1 20); do
    port=$(( 20000 + RANDOM % 20000 ))
    port_free "$port" || continue
    if "${as_owner[@]}" "$PG_BIN/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start -o "\
        -c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir \
        $durability \
        -c max_connections=200 -c shared_buffers=128MB \
        -c shared_preload_libraries=pg_stat_statements" >/dev/null; then
        started=1
        break
    fi
done
if [[ -z "$started" ]]; then
    echo "pg-test-server: the server did not start" >&2
    cat "$dir/server.log" >&2 || true
    exit 1
fi

psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }
psql -d postgres -c "CREATE ROLE invites LOGIN CREATEDB CREATEROLE" \
    -c "CREATE DATABASE invites OWNER invites"
psql -d invites -c "CREATE EXTENSION pg_stat_statements"

export INVITES_PG_URL="postgresql://invites@127.0.0.1:$port/invites"
export INVITES_REQUIRE_SERVERS=1
echo "pg-test-server: PostgreSQL $("$PG_BIN/postgres" -V | awk '{print $3}') at $INVITES_PG_URL (data in $dir)"

case "$mode" in
    test)
        cargo test -p invites-postgres --all-targets
        cargo test --features postgres --test pg_facade
        ;;
    cmd) "${cmd[@]}" ;;
    shell) "${SHELL:-bash}" -i ;;
esac
