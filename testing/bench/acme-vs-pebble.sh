#!/usr/bin/env bash
# Runs the same ACME load (`cairn bench acme`) against Cairn and against Pebble on this machine,
# one after the other, and prints the ratios Cairn/Pebble for issuance throughput and P99
# finalize latency.
#
#   testing/bench/acme-vs-pebble.sh            # 50 accounts, 30 s each
#   ACCOUNTS=100 DURATION=60s MIX=single=1 testing/bench/acme-vs-pebble.sh
#   CAIRN_BIN=path/to/cairn ONLY=cairn testing/bench/acme-vs-pebble.sh   # no build (cairn-bench
#                                              # beside it, or CAIRN_BENCH_BIN); one server
#   KEEP_WORK=1 ...                            # keep the logs (kept anyway when a run fails)
#   CT=1 ONLY=cairn ...                        # Cairn with Certificate Transparency on
#   PEBBLE_BIN=path/to/pebble ...              # another Pebble than Debian's (e.g. one built
#                                              # from a release tag: see BENCHMARKS.md)
#
# Cairn: release build, `cairn serve` with testing/bench/cairn-bench.toml (HTTPS, SQLite with
# synchronous=FULL, CAA checks, lints; only rate-limit buckets enlarged; CAIRN_CONFIG to use
# another file, e.g. one with [ct] enabled).
# Pebble: Debian's package (apt-get install pebble), PEBBLE_VA_NOSLEEP=1 (no artificial
# validation sleep), PEBBLE_WFE_NONCEREJECT=0 (no artificial badNonce); validation is real for
# both: http-01 against the load generator's responder on 127.0.0.1:5002, DNS from the challenge
# test server on 127.0.0.1:8053. Uses ports 5002, 5011, 5012, 8053, 8055, 14000, 14100, 14101,
# 15000.
#
# Throughput is reported two ways: certificates finished within DURATION divided by DURATION
# (the figure compared), and all certificates divided by the whole run including the drain of
# the flows still in flight at the end. Pebble deadlocks under concurrent load: Debian's 2.4
# and 2.10.1 built from its tag alike (see BENCHMARKS.md: its in-memory store's lock and an
# authorization's lock taken in opposite orders; every request then hangs until the load
# generator's 30 s timeout). The script detects that (transport errors), takes Pebble's
# goroutine dump (SIGQUIT) into its log and keeps the logs; the run's Pebble figure is then a
# lower bound, and the script says so.
set -euo pipefail

ACCOUNTS=${ACCOUNTS:-50}
DURATION=${DURATION:-30s}
MIX=${MIX:-single=1}
ONLY=${ONLY:-}
pebble=${PEBBLE_BIN:-pebble}
repo=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
config=${CAIRN_CONFIG:-$repo/testing/bench/cairn-bench.toml}

if [ "$ONLY" != cairn ]; then
    command -v "$pebble" >/dev/null || { echo "$pebble is not installed (apt-get install -y pebble, or set PEBBLE_BIN)" >&2; exit 1; }
    command -v openssl >/dev/null || { echo "openssl is needed for Pebble's TLS certificate" >&2; exit 1; }
fi

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
keep=${KEEP_WORK:-}
if [ -n "${CT:-}" ]; then
    # Certificate Transparency on: SCTs from the two local logs `cairn serve` runs.
    sed 's/^enabled = false/enabled = true/' "$config" >"$work/cairn-bench-ct.toml"
    config=$work/cairn-bench-ct.toml
fi
pids=()
cleanup() {
    status=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "$keep" ] || [ "$status" -ne 0 ]; then
        echo "logs kept in $work" >&2
    else
        rm -rf "$work"
    fi
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

"$cairn" challtestsrv --management 127.0.0.1:8055 --dns 127.0.0.1:8053 \
    --http01 127.0.0.1:5012 --tlsalpn01 127.0.0.1:5011 >"$work/challtestsrv.log" 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:8055/

summary() { # NAME
    python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
fin = s["endpoints"].get("finalize", {})
# (A load generator older than the in-duration figures: the whole-run rate stands in.)
s.setdefault("certificates_in_duration", s["certificates"])
s.setdefault("duration_secs", s["elapsed_secs"])
s.setdefault("certificates_per_sec_in_duration", s["certificates_per_sec"])
print("   %d certificates (%d within the %.0f s), %.1f /s within the duration (%.1f /s over %.1f s incl. drain), P50/P99 finalize %.1f/%.1f ms, errors %s"
      % (s["certificates"], s["certificates_in_duration"], s["duration_secs"], s["certificates_per_sec_in_duration"],
         s["certificates_per_sec"], s["elapsed_secs"], fin.get("p50_ms", 0), fin.get("p99_ms", 0), s["errors"] or 0))
' "$work/$1.json" >&2
}

# CPU time (user + system, clock ticks) a process has used so far.
cpu_ticks() { # PID
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# A process's resident memory now and at its peak so far (VmRSS, VmHWM), in MiB.
rss_mib() { # PID
    awk '/^VmRSS:/ {rss = $2} /^VmHWM:/ {hwm = $2} END {printf "%.1f MiB now, %.1f MiB at peak", rss / 1024, hwm / 1024}' "/proc/$1/status"
}

load() { # NAME DIRECTORY ROOT SERVER_PID
    echo "== $1: $ACCOUNTS accounts, $DURATION, mix $MIX; load before: $(uptime)" >&2
    echo "   server memory idle: $(rss_mib "$4")" >&2
    local before
    before=$(cpu_ticks "$4")
    "$bench" acme --directory "$2" --root "$3" --accounts "$ACCOUNTS" \
        --duration "$DURATION" --mix "$MIX" --http01-listen 127.0.0.1:5002 --json --quiet \
        >"$work/$1.json"
    local ticks=$(($(cpu_ticks "$4") - before))
    echo "   load after: $(uptime)" >&2
    echo "   server memory after the load: $(rss_mib "$4")" >&2
    summary "$1"
    # The server's own CPU per certificate (issue 22's yardstick): the process's user + system
    # time over the run, divided by the certificates issued in it, drain included.
    python3 -c '
import json, os, sys
s = json.load(open(sys.argv[1]))
ms = int(sys.argv[2]) * 1000 / os.sysconf("SC_CLK_TCK")
n = s["certificates"]
if n:
    print("   server CPU %.0f ms over the run: %.2f ms per certificate" % (ms, ms / n))
else:
    print("   server CPU %.0f ms over the run, no certificate issued" % ms)
' "$work/$1.json" "$ticks" >&2
}

transport_errors() { # NAME
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["errors"].get("transport", 0))' "$work/$1.json"
}

# --- Cairn ---
if [ "$ONLY" != pebble ]; then
    RUST_LOG=${RUST_LOG:-warn} "$cairn" serve --config "$config" \
        --data-dir "$work/cairn" >"$work/cairn.log" 2>&1 &
    pids+=($!)
    wait_for https://localhost:14100/directory -k
    load cairn https://localhost:14100/directory "$work/cairn/ca/tls-root.pem" "${pids[-1]}"
    curl -s http://127.0.0.1:14101/metrics >"$work/cairn-metrics.txt" || true
    kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
fi
[ "$ONLY" = cairn ] && exit 0

# --- Pebble ---
tls=$work/pebble-tls
mkdir -p "$tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=bench root" -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$tls/key.pem" -out "$tls/req.pem" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tls/ext"
openssl x509 -req -in "$tls/req.pem" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
    -days 2 -extfile "$tls/ext" -out "$tls/cert.pem" 2>/dev/null
sed "s#PEBBLE_TLS_DIR#$tls#g" "$repo/testing/bench/pebble-config.json" >"$work/pebble-config.json"
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 \
    "$pebble" -config "$work/pebble-config.json" -dnsserver 127.0.0.1:8053 >"$work/pebble.log" 2>&1 &
pids+=($!)
pebble_pid=$!
wait_for https://localhost:14000/dir -k
load pebble https://localhost:14000/dir "$tls/ca.pem" "$pebble_pid"
pebble_stalled=$(transport_errors pebble)
if [ "$pebble_stalled" != 0 ]; then
    kill -QUIT "$pebble_pid" 2>/dev/null || true
    sleep 1
    keep=1
    echo "   Pebble stopped answering ($pebble_stalled flows hit the 30 s transport timeout); its" >&2
    echo "   goroutine dump is in $work/pebble.log; its figure below is a lower bound" >&2
fi

[ "$ONLY" = pebble ] && exit 0
python3 -c '
import json, sys
c = json.load(open(sys.argv[1])); p = json.load(open(sys.argv[2]))
def fin(s): return s["endpoints"].get("finalize", {}).get("p99_ms", 0)
def rate(s): return s.get("certificates_per_sec_in_duration", s["certificates_per_sec"])
def ratio(a, b): return "%10.2fx" % (a / b) if b > 0 else "         —"
# A ratio to a Pebble that stalled (0 certificates, or a run cut by its deadlock) means nothing.
stalled = p["errors"].get("transport", 0) > 0
print("                             Cairn      Pebble     Cairn/Pebble")
print("certificates/s (duration) %10.1f  %10.1f  %s" % (rate(c), rate(p), ratio(rate(c), rate(p)) if not stalled else "  Pebble stalled"))
print("P99 finalize ms           %10.1f  %10.1f  %s" % (fin(c), fin(p), ratio(fin(c), fin(p))))
print("errors                    %10d  %10d" % (c["errors_total"], p["errors_total"]))
' "$work/cairn.json" "$work/pebble.json"
if [ -n "${KEEP:-}" ]; then cp "$work"/cairn.json "$work"/pebble.json "$KEEP"/; fi
