#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/, cargo-fuzz layout, libFuzzer) and runs each briefly on a
# copy of its committed seed corpus, so CI proves they build and do not crash on the seeds.
# Long runs are done by hand: see fuzz/README.md.
#
# The machines have a stable toolchain only; RUSTC_BOOTSTRAP=1 lets it accept the `-Z` flags
# cargo-fuzz passes (sanitizer, coverage instrumentation). Idempotent; runs from the repo root.
# FUZZ_SECONDS (default 20) sets the run time of each target; 0 builds only.
set -euo pipefail
cd "$(dirname "$0")/../.."

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi

cargo fuzz build -O --fuzz-dir fuzz

if [ "$FUZZ_SECONDS" -gt 0 ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    for target in $(cargo fuzz list --fuzz-dir fuzz); do
        mkdir -p "$work/$target"
        cp fuzz/corpus/"$target"/* "$work/$target"/
        echo "fuzzing $target for ${FUZZ_SECONDS}s"
        status=0
        cargo fuzz run -O --fuzz-dir fuzz "$target" "$work/$target" -- \
            -max_total_time="$FUZZ_SECONDS" -max_len=20000 -print_final_stats=1 \
            >"$work/$target.log" 2>&1 || status=$?
        grep -E "^(stat::number_of_executed_units|stat::new_units_added|Done [0-9]+ runs)" "$work/$target.log" || true
        if [ "$status" -ne 0 ]; then
            tail -n 60 "$work/$target.log" >&2
            echo "fuzz target $target failed (exit $status); the input is in fuzz/artifacts/$target" >&2
            exit 1
        fi
    done
fi
echo "fuzz: ok"
