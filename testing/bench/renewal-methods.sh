#!/usr/bin/env bash
# Renewal throughput by validation method, in one sitting: the same ACME load (`cairn bench
# acme --mix renewal=1`: each account's first certificate, then renewals of it with `replaces`)
# against a fresh `cairn serve` per method. The load generator deactivates each order's
# authorizations after the download (RFC 8555 §7.5.2), so every renewal validates again, as a
# real renewal does once the reuse window has passed. What differs is what the subscriber must do per renewal:
#   http-01         serve a new token (the load generator's responder on 127.0.0.1:5002)
#   dns-01          publish a new TXT record (challenge test server management API)
#   dns-persist-01  nothing: the one standing `_validation-persist` record stays (published at
#                   the account's first order for the name)
#
#   testing/bench/renewal-methods.sh                       # 100 accounts, 30 s per method
#   ACCOUNTS=50 DURATION=20s METHODS="http-01 dns-persist-01" testing/bench/renewal-methods.sh
#   CAIRN_BIN=path/to/cairn ...                            # no build (cairn-bench beside it)
#
# Uses ports 5002, 5011, 5012, 8053, 8055, 14100, 14101. Release builds; the same
# testing/bench/cairn-bench.toml as acme-vs-pebble.sh (HTTPS, SQLite synchronous=FULL, CAA,
# lints, rate-limit checks).
set -euo pipefail

ACCOUNTS=${ACCOUNTS:-100}
DURATION=${DURATION:-30s}
METHODS=${METHODS:-"http-01 dns-01 dns-persist-01"}
repo=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
if [ -n "${CAIRN_BIN:-}" ]; then
    cairn=$CAIRN_BIN
else
    (cd "$repo" && cargo build --release --locked -p cairn -p cairn-bench)
    cairn=$target/release/cairn
fi
bench=${CAIRN_BENCH_BIN:-$(dirname "$cairn")/cairn-bench}
[ -x "$bench" ] || { echo "$bench is missing: cargo build --release -p cairn-bench (or set CAIRN_BENCH_BIN)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
    status=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${KEEP_WORK:-}" ] || [ "$status" -ne 0 ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

wait_for() { # URL [curl options]
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "${@:2}" "$1" && return 0
        sleep 0.1
    done
    echo "timed out waiting for $1" >&2
    return 1
}

config=$repo/testing/bench/cairn-bench.toml

"$cairn" challtestsrv --management 127.0.0.1:8055 --dns 127.0.0.1:8053 \
    --http01 127.0.0.1:5012 --tlsalpn01 127.0.0.1:5011 >"$work/challtestsrv.log" 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:8055/

for method in $METHODS; do
    RUST_LOG=${RUST_LOG:-warn} "$cairn" serve --config "$config" \
        --data-dir "$work/cairn-$method" >"$work/cairn-$method.log" 2>&1 &
    pids+=($!)
    wait_for https://localhost:14100/directory -k
    case $method in
        http-01) how=(--http01-listen 127.0.0.1:5002) ;;
        *) how=(--challtestsrv http://127.0.0.1:8055 --dns-method "$method") ;;
    esac
    echo "== $method: $ACCOUNTS accounts, $DURATION, mix renewal=1; load before: $(uptime)" >&2
    "$bench" acme --directory https://localhost:14100/directory \
        --root "$work/cairn-$method/ca/tls-root.pem" --accounts "$ACCOUNTS" \
        --duration "$DURATION" --mix renewal=1 --deactivate-authzs "${how[@]}" --json --quiet >"$work/$method.json"
    kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
done

python3 - "$work" $METHODS <<'PY'
import json, sys
work, methods = sys.argv[1], sys.argv[2:]
print("%-16s %10s %10s %12s %12s %8s" % ("method", "certs", "certs/s", "P50 chall ms", "P99 final ms", "errors"))
for m in methods:
    s = json.load(open(f"{work}/{m}.json"))
    e = s["endpoints"]
    rate = s.get("certificates_per_sec_in_duration", s["certificates_per_sec"])
    ch = e.get("challenge", {}).get("p50_ms", 0)
    fin = e.get("finalize", {}).get("p99_ms", 0)
    print("%-16s %10d %10.1f %12.1f %12.1f %8d" % (m, s["certificates"], rate, ch, fin, s["errors_total"]))
PY
