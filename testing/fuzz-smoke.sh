#!/usr/bin/env bash
# A short smoke run of every fuzz target: builds the fuzz crate (fuzz/, its own workspace) on
# stable Rust and runs each target listed in fuzz/Cargo.toml under libFuzzer for a few seconds,
# starting from fuzz/corpus/<target>/ when it exists. A crash, a timeout or a build failure fails
# the script (libFuzzer leaves the input in fuzz/artifacts/).
#
#   bash testing/fuzz-smoke.sh [target ...]      (FUZZ_SECONDS per target, default 8)
#
# This is a smoke test, not a fuzzing campaign: the build is a plain dev build (no coverage
# instrumentation, which would rebuild every dependency with other flags), so libFuzzer mutates
# blindly. For real fuzzing use `cargo fuzz run <target>` on nightly.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz="$repo/fuzz"
cd "$fuzz"
seconds="${FUZZ_SECONDS:-8}"

# Every [[bin]] in fuzz/Cargo.toml: targets added there are picked up without editing this file.
mapfile -t all < <(awk '/^\[\[bin\]\]/ {bin = 1; next} /^\[/ {bin = 0} bin && /^name *=/ {gsub(/.*= *"|".*/, ""); print}' Cargo.toml)
if [ "${#all[@]}" -eq 0 ]; then
    echo "fuzz-smoke: no [[bin]] targets in fuzz/Cargo.toml" >&2
    exit 1
fi
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

# The fuzz crate is its own workspace with no committed lock file: start from the main
# workspace's, so it builds the same dependency versions (cargo adds libfuzzer-sys).
[ -f Cargo.lock ] || cp "$repo/Cargo.lock" Cargo.lock

echo "==> cargo build (fuzz/): ${all[*]}"
cargo build --bins
bin_dir="${CARGO_TARGET_DIR:-$fuzz/target}/debug"

mkdir -p artifacts
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
for target in "${targets[@]}"; do
    corpus=("$work/$target")
    mkdir -p "$work/$target"
    [ -d "corpus/$target" ] && corpus+=("corpus/$target")
    echo "==> $target: ${seconds}s"
    if ! "$bin_dir/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$target-" -print_final_stats=1 "${corpus[@]}" \
        >"$work/$target.log" 2>&1; then
        tail -n 40 "$work/$target.log"
        failed+=("$target")
    else
        grep -E '^(stat::number_of_executed_units|Done)' "$work/$target.log" || true
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz-smoke: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz-smoke: ${#targets[@]} targets ran ${seconds}s each without a crash"
