#!/usr/bin/env bash
# The demo server's GET /metrics is a valid Prometheus exposition with the library's metrics:
# start the example server on a free loopback port, make a few requests (bulk invites in both
# modes, one idempotent and replayed, a refused token, a preview), scrape /metrics, and run
# `promtool check metrics` (Prometheus' own parser and linter) on it. Fails on any problem
# promtool reports and on any expected metric missing. Runs from the repo root; idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."

# promtool comes from Debian's `prometheus` package. Only the tool is taken out of the
# package (dpkg-deb -x), so installing it never starts a Prometheus server on this machine.
if ! command -v promtool >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    deb_dir=$(mktemp -d)
    (cd "$deb_dir" && apt-get download -qq prometheus 2>/dev/null)
    dpkg-deb -x "$deb_dir"/prometheus_*.deb "$deb_dir/root"
    install -m 0755 "$deb_dir/root/usr/bin/promtool" /usr/local/bin/promtool
    rm -rf "$deb_dir"
fi
promtool --version | head -n 1

cargo build --quiet --example server --features axum
server_bin="$PWD/target/debug/examples/server"

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
base="http://127.0.0.1:$port"
(cd "$work" && RUST_LOG=info INVITES_LOG_JSON=1 exec "$server_bin" --addr "127.0.0.1:$port" >server.out 2>server.log) &
server_pid=$!
for _ in $(seq 1 100); do
    if curl -fsS "$base/metrics" >/dev/null 2>&1; then
        break
    fi
    sleep 0.1
done

post() { # path, body, extra curl args...
    local path=$1 body=$2
    shift 2
    curl -sS -o /dev/null -w '%{http_code}' "$base/api/v1$path" -H 'x-api-key: demo-global-key' \
        -H 'content-type: application/json' -d "$body" "$@"
}
sites='["00000000-0000-0000-0000-000000005170", "00000000-0000-0000-0000-000000005171"]'
email_body="{\"invite_method\": \"email\", \"email\": \"metrics-ci@example.test\", \"first_name\": \"Ci\", \"website_ids\": $sites}"
direct_body="{\"invite_method\": \"direct\", \"email\": \"metrics-direct@example.test\", \"website_ids\": $sites}"
key="metrics-ci-$$-$(date +%s)"
codes="$(post /invites/bulk "$email_body" -H "Idempotency-Key: $key")"
codes="$codes $(post /invites/bulk "$email_body" -H "Idempotency-Key: $key")"
codes="$codes $(post /invites/bulk "$direct_body")"
codes="$codes $(post /invites/preview "{\"token\": \"$(printf '0%.0s' $(seq 1 64))\"}")"
echo "metrics: requests answered $codes"
for code in $codes; do
    if [[ $code == 5* ]]; then
        echo "metrics: a request failed with $code" >&2
        tail -n 20 "$work/server.log" >&2
        exit 1
    fi
done

curl -fsS "$base/metrics" >"$work/metrics.txt"
if ! promtool check metrics <"$work/metrics.txt" >"$work/promtool.txt" 2>&1; then
    echo "metrics: promtool check metrics FAILED:" >&2
    cat "$work/promtool.txt" >&2
    exit 1
fi
if [[ -s "$work/promtool.txt" ]]; then
    echo "metrics: promtool reported problems:" >&2
    cat "$work/promtool.txt" >&2
    exit 1
fi

missing=0
for name in \
    'invites_requests_total{operation="bulk_invite_idempotent",outcome="ok"} 2' \
    'invites_requests_total{operation="bulk_invite",outcome="ok"} 1' \
    'invites_requests_total{operation="preview",outcome="invalid_token"} 1' \
    'invites_targets_total{method="email",code="invited"} 2' \
    'invites_targets_total{method="direct",code="added"} 2' \
    'invites_delivery_attempts_total{result="sent"} 1' \
    'invites_request_duration_seconds_bucket{operation="bulk_invite",le="+Inf"} 1' \
    'invites_store_call_duration_seconds_count{method="create_invitations"} 1' \
    '# TYPE invites_request_duration_seconds histogram' \
    '# HELP invites_requests_total ' \
    '# TYPE invites_outbox_queued_messages gauge'; do
    if ! grep -qF -- "$name" "$work/metrics.txt"; then
        echo "metrics: missing from /metrics: $name" >&2
        missing=1
    fi
done
if [[ $missing -ne 0 ]]; then
    cat "$work/metrics.txt" >&2
    exit 1
fi
# The delivery worker's health route: running, with a tick behind it.
health="$(curl -fsS "$base/health")"
echo "metrics: health $health"
python3 -c 'import json, sys; h = json.loads(sys.argv[1]); assert h["status"] == "ok" and h["running"] and h["last_tick"], h' "$health"
# The logs are JSON lines and hold no address of the requests.
if grep -q 'metrics-ci@\|metrics-direct@' "$work/server.log"; then
    echo "metrics: an address reached the logs" >&2
    exit 1
fi
head -n 1 "$work/server.log" | python3 -c 'import json, sys; json.loads(sys.stdin.readline())'
echo "metrics: promtool check metrics passed on $(grep -c '^invites_' "$work/metrics.txt") samples"
