#!/usr/bin/env bash
# renewalInfo (RFC 9773) GET throughput of `cairn serve` with wrk on loopback: issues a few
# certificates with the load generator, then lets wrk GET the renewal information of one of
# them over HTTPS (keep-alive) for a while.
#
#   testing/bench/renewal-info-wrk.sh                 # 2 threads, 64 connections, 15 s
#   THREADS=2 CONNECTIONS=128 DURATION=30s testing/bench/renewal-info-wrk.sh
#   CAIRN_BIN=path/to/cairn testing/bench/renewal-info-wrk.sh   # no build (cairn-bench beside it)
#
# Needs wrk (apt-get install -y wrk). Uses ports 5002, 5011, 5012, 8053, 8055, 14100, 14101.
set -euo pipefail

THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-15s}
repo=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 1; }

if [ -n "${CAIRN_BIN:-}" ]; then
    cairn=$CAIRN_BIN
else
    (cd "$repo" && cargo build --release --locked -p cairn -p cairn-bench)
    cairn=$target/release/cairn
fi
# The load generator: its own binary, beside cairn (`cairn bench` runs the same one).
bench=${CAIRN_BENCH_BIN:-$(dirname "$cairn")/cairn-bench}
[ -x "$bench" ] || { echo "$bench is missing: cargo build --release -p cairn-bench (or set CAIRN_BENCH_BIN)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
wait_for() {
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "${@:2}" "$1" && return 0
        sleep 0.1
    done
    echo "timed out waiting for $1" >&2
    return 1
}

"$cairn" challtestsrv --management 127.0.0.1:8055 --dns 127.0.0.1:8053 \
    --http01 127.0.0.1:5012 --tlsalpn01 127.0.0.1:5011 >"$work/challtestsrv.log" 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:8055/
RUST_LOG=${RUST_LOG:-warn} "$cairn" serve --config "$repo/testing/bench/cairn-bench.toml" \
    --data-dir "$work/cairn" >"$work/cairn.log" 2>&1 &
pids+=($!)
wait_for https://localhost:14100/directory -k

"$bench" acme --directory https://localhost:14100/directory \
    --root "$work/cairn/ca/tls-root.pem" --accounts 4 --certs 20 --quiet \
    --cert-ids "$work/ids.txt" >/dev/null
id=$(head -n 1 "$work/ids.txt")
url=https://localhost:14100/acme/renewal-info/$id
curl -sf --cacert "$work/cairn/ca/tls-root.pem" "$url" >/dev/null || { echo "renewalInfo GET failed: $url" >&2; exit 1; }
echo "== wrk -t$THREADS -c$CONNECTIONS -d$DURATION $url; load before: $(uptime)" >&2
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url"
echo "== load after: $(uptime)" >&2
