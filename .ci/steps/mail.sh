#!/usr/bin/env bash
# The mail transports against real servers: installs aiosmtpd (pip) for the SMTP tests'
# server script and runs both transport crates' tests with INVITES_REQUIRE_SERVERS=1, so a
# missing server fails instead of skipping. Each SMTP test starts (and stops) its own
# aiosmtpd on a free loopback port; the Postmark tests run their own local HTTP stub.
# Idempotent; runs from the repository root.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/mail-venv
python=${INVITES_SMTP_PYTHON:-}
if [[ -z "$python" ]]; then
    if python3 -c 'import aiosmtpd' 2>/dev/null; then
        python=$(command -v python3)
    elif [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
        python=$venv/bin/python
    else
        # A private virtualenv keeps the system Python untouched (and works where pip
        # refuses system-wide installs); fall back to Debian's package if venv is missing.
        if python3 -m venv "$venv" 2>/dev/null && "$venv/bin/pip" install --quiet --disable-pip-version-check aiosmtpd; then
            python=$venv/bin/python
        else
            rm -rf "$venv"
            apt-get update -qq && apt-get install -y -qq python3-aiosmtpd >/dev/null
            python=$(command -v python3)
        fi
    fi
fi
"$python" -c 'import aiosmtpd; print("aiosmtpd", aiosmtpd.__version__)'

export INVITES_SMTP_PYTHON=$python
export INVITES_REQUIRE_SERVERS=1
cargo test -p invites-smtp -p invites-postmark
