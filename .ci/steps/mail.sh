#!/usr/bin/env bash
# The mail transports against real servers, on their own: finds or installs aiosmtpd (see
# smtp-python.sh) and runs both transport crates' tests with INVITES_REQUIRE_SERVERS=1, so a
# missing server fails instead of skipping. Each SMTP test starts (and stops) its own aiosmtpd
# on a free loopback port; the Postmark tests run their own local HTTP stub. `.ci/run` runs
# these tests inside the one workspace test run; this script is for a developer.
set -euo pipefail
cd "$(dirname "$0")/../.."

INVITES_SMTP_PYTHON=${INVITES_SMTP_PYTHON:-$(.ci/steps/smtp-python.sh)}
export INVITES_SMTP_PYTHON
export INVITES_REQUIRE_SERVERS=1
cargo test -p invites-smtp -p invites-postmark
