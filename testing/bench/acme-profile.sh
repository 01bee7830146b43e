#!/usr/bin/env bash
# Where a certificate's server CPU goes (issue 22): runs `cairn serve` (release build, CT off,
# testing/bench/cairn-bench.toml) under the ACME load generator while `perf record` samples the
# server, then sorts the samples into the cost items of a certificate (EC math, SQLite, the
# allocator, HTTP, the kernel, …) and prints each item's share next to the server's CPU time per
# certificate measured over the same run.
#
#   CAIRN_BIN=target/release/cairn ACCOUNTS=100 DURATION=25s testing/bench/acme-profile.sh
#
# perf slows the server (it samples at 499 Hz with call graphs off), so the throughput of this
# run is below acme-vs-pebble.sh's; the shares are what it is for. Needs `perf` (Debian:
# linux-perf) and permission to profile the process (root, or kernel.perf_event_paranoid <= 1).
set -euo pipefail

ACCOUNTS=${ACCOUNTS:-100}
DURATION=${DURATION:-25s}
repo=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
config=${CAIRN_CONFIG:-$repo/testing/bench/cairn-bench.toml}
command -v perf >/dev/null || { echo "perf is not installed (Debian: linux-perf)" >&2; exit 1; }
if [ -n "${CAIRN_BIN:-}" ]; then
    cairn=$CAIRN_BIN
else
    (cd "$repo" && cargo build --release --locked -p cairn -p cairn-bench)
    cairn=$target/release/cairn
fi
bench=${CAIRN_BENCH_BIN:-$(dirname "$cairn")/cairn-bench}

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${KEEP_WORK:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

"$cairn" challtestsrv --management 127.0.0.1:8055 --dns 127.0.0.1:8053 \
    --http01 127.0.0.1:5012 --tlsalpn01 127.0.0.1:5011 >"$work/challtestsrv.log" 2>&1 &
pids+=($!)
RUST_LOG=${RUST_LOG:-warn} "$cairn" serve --config "$config" --data-dir "$work/cairn" \
    >"$work/cairn.log" 2>&1 &
server=$!
pids+=($server)
for _ in $(seq 1 100); do
    curl -sk -o /dev/null https://localhost:14100/directory && break
    sleep 0.1
done

seconds=${DURATION%s}
before=$(awk '{print $14 + $15}' "/proc/$server/stat")
perf record -F 499 -p "$server" -o "$work/perf.data" -- sleep "$seconds" >"$work/perf.log" 2>&1 &
perf_pid=$!
"$bench" acme --directory https://localhost:14100/directory --root "$work/cairn/ca/tls-root.pem" \
    --accounts "$ACCOUNTS" --duration "$DURATION" --mix single=1 \
    --http01-listen 127.0.0.1:5002 --json --quiet >"$work/bench.json"
wait "$perf_pid" || true
ticks=$(($(awk '{print $14 + $15}' "/proc/$server/stat") - before))

perf report -i "$work/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null \
    | grep -v '^#' >"$work/flat.txt"
python3 - "$work/flat.txt" "$work/bench.json" "$ticks" <<'PY'
import json, os, re, sys

flat, summary, ticks = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3])
certs = max(summary["certificates"], 1)
ms_per_cert = ticks * 1000 / os.sysconf("SC_CLK_TCK") / certs
# First match wins: the order matters where names overlap.
items = [
    ("EC math: JWS and CSR verifies, CA signatures (aws-lc)", r"ecp_nistz256|beeu|bn_|BN_|ec_|EC_|ecdsa|p256"),
    ("SHA-2 and HMAC", r"sha256|sha512|hmac|SHA"),
    ("TLS records (AES-GCM, rustls)", r"aes|gcm|ghash|rustls"),
    ("SQLite engine", r"sqlite3|pcache|wal|[Bb]tree|Vdbe|subjournal|pager"),
    ("sqlx (statements, worker channel)", r"sqlx"),
    ("allocator (glibc malloc/free)", r"malloc|free|_int_|unlink_chunk|consolidate|realloc|calloc"),
    ("memcpy / memcmp", r"mem(move|cpy|cmp|set)|rep_movs"),
    ("HTTP: h2, hyper, axum, tower", r"h2::|hyper|axum|tower|http::"),
    ("JSON (serde)", r"serde|json"),
    ("DER / X.509", r"der::|x509|spki|asn1"),
    ("tokio, flume, futures (scheduling)", r"tokio|flume|futures|parking|mio"),
]
shares, kernel, other = {}, 0.0, 0.0
for line in open(flat):
    m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)", line)
    if not m:
        continue
    pct, dso, sym = float(m.group(1)), m.group(2), m.group(4)
    for name, rx in items:
        if re.search(rx, sym):
            shares[name] = shares.get(name, 0.0) + pct
            break
    else:
        if dso.startswith("[kernel"):
            kernel += pct
        else:
            other += pct
shares["kernel: syscalls, scheduling, page cache, fsync"] = kernel
shares["other user space"] = other
print(f"{certs} certificates, {summary['certificates_per_sec']:.1f} /s under perf; "
      f"server CPU {ms_per_cert:.2f} ms per certificate")
print("| Item | Share of server CPU | ms per certificate |")
print("|---|---|---|")
for name, pct in sorted(shares.items(), key=lambda kv: -kv[1]):
    print(f"| {name} | {pct:.1f} % | {ms_per_cert * pct / 100:.2f} |")
PY
