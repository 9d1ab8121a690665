#!/usr/bin/env bash
# Prints the path of a Python that can import aiosmtpd (the SMTP tests' real server), making
# one if needed: python3 itself if it has aiosmtpd; else a private virtualenv at
# target/mail-venv with aiosmtpd from pip (the system Python stays untouched); else Debian's
# python3-aiosmtpd. Progress goes to stderr, the path alone to stdout. Runs from the repo root.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/mail-venv
if python3 -c 'import aiosmtpd' 2>/dev/null; then
    python=$(command -v python3)
elif [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
    python=$PWD/$venv/bin/python
elif python3 -m venv "$venv" >&2 2>/dev/null \
    && "$venv/bin/pip" install --quiet --disable-pip-version-check aiosmtpd >&2; then
    python=$PWD/$venv/bin/python
else
    rm -rf "$venv"
    apt-get update -qq >&2 && apt-get install -y -qq python3-aiosmtpd >/dev/null
    python=$(command -v python3)
fi
"$python" -c 'import aiosmtpd, sys; print("aiosmtpd", aiosmtpd.__version__, file=sys.stderr)'
echo "$python"
