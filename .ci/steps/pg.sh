#!/usr/bin/env bash
# CI step: the PostgreSQL backend's tests against a throwaway PostgreSQL 15 server.
# Installs the server if it is missing, then runs scripts/pg-test-server.sh (which starts the
# server, exports INVITES_PG_URL and INVITES_REQUIRE_SERVERS=1, runs the tests and stops the
# server on exit). Idempotent; runs from the repository root.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ ! -x /usr/lib/postgresql/15/bin/initdb ]]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql-15 >/dev/null
fi

# The feature-gated targets are not in the workspace-wide clippy run.
cargo clippy --features postgres --bench pg --test pg_facade -- -D warnings

scripts/pg-test-server.sh -- bash -c '
    set -euo pipefail
    cargo test -p invites-postgres --all-targets
    cargo test --features postgres --test pg_facade
    # The benches compile, and one quick pass proves they run against the server.
    cargo bench --features postgres --bench pg -- --test
'
