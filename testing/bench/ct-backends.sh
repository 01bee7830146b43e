#!/usr/bin/env bash
# `cairn ct serve` with two logs side by side, one on the filesystem and one on S3-compatible
# object storage (a local moto server, as the tests use), driven by `cairn bench ct --log` at
# the same number of clients; then the read path: wrk fetching a full data tile from the
# filesystem log's monitoring prefix.
#
#   CAIRN_BIN=target/release/cairn CLIENTS=4096 DURATION=10s testing/bench/ct-backends.sh
#
# Needs moto_server (testing/requirements.txt; MOTO_SERVER or .venv/bin/moto_server) and wrk.
set -euo pipefail

CLIENTS=${CLIENTS:-4096}
DURATION=${DURATION:-10s}
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
cat >"$work/ct.toml" <<TOML
listen = "127.0.0.1:$port"

[[log]]
name = "fs"
submission_url = "http://127.0.0.1:$port/fs/"
key_file = "$work/keys/fs.pem"
roots_dir = "$work/roots"
data_dir = "$work/data/fs"
not_after_start = "2000-01-01T00:00:00Z"
not_after_limit = "2100-01-01T00:00:00Z"
pool_size = 100000

[[log]]
name = "s3"
submission_url = "http://127.0.0.1:$port/s3/"
key_file = "$work/keys/s3.pem"
roots_dir = "$work/roots"
data_dir = "$work/data/s3"
not_after_start = "2000-01-01T00:00:00Z"
not_after_limit = "2100-01-01T00:00:00Z"
pool_size = 100000

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
pids+=($!)
wait_for "http://127.0.0.1:$port/fs/checkpoint"

for log in fs s3; do
    echo "== $log: $CLIENTS clients, $DURATION; load before: $(uptime)" >&2
    "$bench" ct --url "http://127.0.0.1:$port/$log/" --ca-dir "$work/ca" \
        --clients "$CLIENTS" --duration "$DURATION" | sed 's/^/   /' >&2
done

# A full data tile (256 entries) of the filesystem log, as a monitor reads it.
tile=$(curl -s "http://127.0.0.1:$port/fs/checkpoint" >/dev/null; echo "tile/data/000")
echo "== read path: wrk -t2 -c64 -d10s /fs/$tile (gzip accepted)" >&2
wrk -t2 -c64 -d10s --latency -H 'Accept-Encoding: gzip' -H 'User-Agent: cairn-bench (ops@example.org)' \
    "http://127.0.0.1:$port/fs/$tile" | sed 's/^/   /' >&2
