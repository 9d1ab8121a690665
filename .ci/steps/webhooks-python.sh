#!/usr/bin/env bash
# Prints the path of a Python that can import standardwebhooks (the Standard Webhooks reference
# library, which the webhook tests verify our signatures with), making one if needed: python3
# itself if it has the library; else a private virtualenv at target/webhooks-venv with it from
# pip (the system Python stays untouched). Progress goes to stderr, the path alone to stdout.
# Runs from the repo root.
set -euo pipefail
cd "$(dirname "$0")/../.."

STANDARDWEBHOOKS_VERSION=1.3.0
venv=target/webhooks-venv
if python3 -c 'import standardwebhooks' 2>/dev/null; then
    python=$(command -v python3)
elif [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import standardwebhooks' 2>/dev/null; then
    python=$PWD/$venv/bin/python
else
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "standardwebhooks==$STANDARDWEBHOOKS_VERSION" >&2
    python=$PWD/$venv/bin/python
fi
"$python" -c 'import standardwebhooks, sys; print("standardwebhooks imported from", standardwebhooks.__file__, file=sys.stderr)'
echo "$python"
