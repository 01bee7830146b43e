#!/usr/bin/env bash
# `cairn ct serve` with two logs side by side, one on the filesystem and one on S3-compatible
# object storage (a local moto server, as the tests use), driven by `cairn bench ct --log` at
# the same number of clients; then the read path: wrk fetching a full data tile from the
# filesystem log's monitoring prefix.
#
#   CAIRN_BIN=target/release/cairn CLIENTS=4096 DURATION=10s testing/bench/ct-backends.sh
#
# MAX_CONNECTIONS sets the listener's connection cap (default 4096, the default of every Cairn
# listener); the connections it refused during each run are printed.
# PERIOD_MS sets both logs' sequencing period (default 1000, as a production log). After each
# run the script prints what the server itself says: the sequencing cycle's P50/P99 from its
# `cairn_ct_sequencing_duration_seconds` summary (a sliding window of the last minute, so the
# last run dominates), and the server's CPU time per durable submission (user + system from
# /proc over the run), next to the throughput bound clients ÷ (period + P50 cycle).
#
# Needs moto_server (testing/requirements.txt; MOTO_SERVER or .venv/bin/moto_server) and wrk.
set -euo pipefail

CLIENTS=${CLIENTS:-4096}
DURATION=${DURATION:-10s}
PERIOD_MS=${PERIOD_MS:-1000}
repo=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
if [ -n "${CAIRN_BIN:-}" ]; then
    cairn=$CAIRN_BIN
else
    (cd "$repo" && cargo build --release --locked -p cairn -p cairn-bench)
    cairn=$target/release/cairn
fi
bench=${CAIRN_BENCH_BIN:-$(dirname "$cairn")/cairn-bench}
moto=${MOTO_SERVER:-$repo/.venv/bin/moto_server}
[ -x "$moto" ] || { echo "moto_server not found (pip install -r testing/requirements.txt, or set MOTO_SERVER)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is not installed (Debian: wrk)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${KEEP_WORK:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "timed out: $1" >&2; return 1; }

s3_port=$(free_port)
"$moto" -p "$s3_port" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$s3_port/"
curl -sf -X PUT "http://127.0.0.1:$s3_port/ct-bench" >/dev/null

# The CA whose certificates are submitted (made by a one-second in-process run).
"$bench" ct --ca-dir "$work/ca" --clients 8 --duration 1s >/dev/null
mkdir -p "$work/roots" && cp "$work/ca/root.pem" "$work/roots/"

port=$(free_port)
metrics_port=$(free_port)
cat >"$work/ct.toml" <<TOML
listen = "127.0.0.1:$port"
metrics_listen = "127.0.0.1:$metrics_port"
max_connections = ${MAX_CONNECTIONS:-4096}

[[log]]
name = "fs"
submission_url = "http://127.0.0.1:$port/fs/"
key_file = "$work/keys/fs.pem"
roots_dir = "$work/roots"
data_dir = "$work/data/fs"
not_after_start = "2000-01-01T00:00:00Z"
not_after_limit = "2100-01-01T00:00:00Z"
pool_size = 100000
period_ms = $PERIOD_MS

[[log]]
name = "s3"
submission_url = "http://127.0.0.1:$port/s3/"
key_file = "$work/keys/s3.pem"
roots_dir = "$work/roots"
data_dir = "$work/data/s3"
not_after_start = "2000-01-01T00:00:00Z"
not_after_limit = "2100-01-01T00:00:00Z"
pool_size = 100000
period_ms = $PERIOD_MS

[log.s3]
bucket = "ct-bench"
prefix = "s3"
endpoint = "http://127.0.0.1:$s3_port"
region = "us-east-1"
allow_http = true
TOML
mkdir -p "$work/keys"
AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing RUST_LOG=${RUST_LOG:-warn} \
    "$cairn" ct serve --config "$work/ct.toml" >"$work/ct.log" 2>&1 &
server=$!
pids+=($server)
wait_for "http://127.0.0.1:$port/fs/checkpoint"

# User + system CPU of the server so far, in clock ticks.
server_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
hz=$(getconf CLK_TCK)
# The server's sequencing-cycle quantile q (0.5, 0.99) for one log, in ms.
# Connections the CT listener refused at its cap so far.
refused() {
    curl -s "http://127.0.0.1:$metrics_port/metrics" |
        awk '$1 ~ /^cairn_listener_connections_refused_total\{/ && index($1, "listener=\"ct\"") { n += $2 } END { print n + 0 }'
}
cycle_ms() {
    curl -s "http://127.0.0.1:$metrics_port/metrics" |
        awk -v lg="$1" -v q="$2" '$1 ~ /^cairn_ct_sequencing_duration_seconds\{/ && index($1, "log=\"" lg "\"") && index($1, "quantile=\"" q "\"") { printf "%.1f", $2 * 1000 }'
}

for log in fs s3; do
    echo "== $log: $CLIENTS clients, $DURATION, period $PERIOD_MS ms; load before: $(uptime)" >&2
    before=$(server_ticks)
    refused_before=$(refused)
    "$bench" ct --url "http://127.0.0.1:$port/$log/" --ca-dir "$work/ca" \
        --clients "$CLIENTS" --duration "$DURATION" --json >"$work/$log.json"
    after=$(server_ticks)
    echo "   connections refused at the cap of ${MAX_CONNECTIONS:-4096}: $(($(refused) - refused_before))" >&2
    python3 - "$work/$log.json" "$((after - before))" "$hz" "$(cycle_ms "$log" 0.5)" "$(cycle_ms "$log" 0.99)" "$CLIENTS" "$PERIOD_MS" >&2 <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
ticks, hz, p50, p99, clients, period = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
durable = s["durable"]
lat = s.get("add_chain") or {}
print(f"   durable {durable} in {s['elapsed_s']:.2f} s = {s['per_second']:.0f}/s (503: {s['rejected_503']}, errors: {s['errors']})")
if s.get("first_error"):
    print(f"   first error: {s['first_error']}")
if lat:
    print(f"   add-chain latency P50 {lat['p50_ms']:.0f} ms, P99 {lat['p99_ms']:.0f} ms")
print(f"   server sequencing cycle (its metrics): P50 {p50 or '?'} ms, P99 {p99 or '?'} ms")
cpu_ms = ticks * 1000 / hz
if durable:
    print(f"   server CPU {cpu_ms / 1000:.1f} s = {cpu_ms * 1000 / durable:.0f} µs per durable submission")
if p50:
    bound = clients / ((period + float(p50)) / 1000)
    print(f"   bound from waiting alone: {clients} clients / (period + P50 cycle) = {bound:.0f}/s")
PY
done

# A full data tile (256 entries) of the filesystem log, as a monitor reads it.
tile=$(curl -s "http://127.0.0.1:$port/fs/checkpoint" >/dev/null; echo "tile/data/000")
echo "== read path: wrk -t2 -c64 -d10s /fs/$tile (gzip accepted)" >&2
wrk -t2 -c64 -d10s --latency -H 'Accept-Encoding: gzip' -H 'User-Agent: cairn-bench (ops@example.org)' \
    "http://127.0.0.1:$port/fs/$tile" | sed 's/^/   /' >&2
