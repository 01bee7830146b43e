#!/usr/bin/env bash
# Issuance through the split deployment next to `cairn serve`, with the same load on the same
# machine, one after the other (issue 15's benchmark):
#   1. `cairn serve`: every component in one process;
#   2. split, one of each: `cairn sa|ca|ra|wfe serve` as four processes (gRPC over mutual TLS,
#      the internal PKI from `cairn admin pki dev`), the RA with its VA in process;
#   3. split, two WFE+RA pairs: a nonce service, two RAs and two WFEs (each WFE calls both RAs),
#      with the load split across the two WFEs (two load generators, half the accounts each);
#   4. (split1v, not in the default RUNS) split, one of each, with three remote perspectives
#      (`cairn va serve`, RIRs ARIN, RIPE and APNIC) that the RA corroborates every validation
#      and CAA check with: the remote VAs' CPU per certificate.
# With PG_URL, the PostgreSQL server's CPU per certificate is measured too (every process of
# the postgres user, which should run nothing else meanwhile).
# For each run it prints the throughput, P99 finalize, and every process's CPU time per
# certificate (user + system from /proc over the run), which docs/scaling.md's capacity model
# is derived from; for the split runs also the RPCs per certificate each service answered, by
# method (from the services' /metrics).
#
#   CAIRN_BIN=target/release/cairn ACCOUNTS=100 DURATION=30s testing/bench/split.sh
#   RUNS="serve split1" ...     # a subset, in this order (also split1v)
#   PG_URL=postgres://postgres@127.0.0.1:5432/test ...   # every run on PostgreSQL (a fresh
#                               # schema each), instead of SQLite
#
# Validation is real: dns-01, the load generators placing their TXT records in the challenge
# test server (127.0.0.1:8055) that every VA asks (127.0.0.1:8053); dns-01 rather than http-01
# so that two load generators can run at once (one http-01 port). Ports 5011, 5012, 8053, 8055,
# and 14100-14199 for the services.
set -euo pipefail

ACCOUNTS=${ACCOUNTS:-100}
DURATION=${DURATION:-30s}
RUNS=${RUNS:-serve split1 split2}
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
    if [ -n "${PG_URL:-}" ]; then
        for schema in $(psql "$PG_URL" -Atc "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'cairn_bench_split_$$_%'" 2>/dev/null); do
            psql "$PG_URL" -qc "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1 || true
        done
    fi
    if [ -n "${KEEP_WORK:-}" ] || [ "$status" -ne 0 ]; then
        echo "logs kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

wait_tcp() { # PORT NAME
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for $2 on port $1" >&2
    return 1
}
cpu_ticks() { # PID, or "postgres": every process of that user
    if [ "$1" = postgres ]; then
        local sum=0 p
        for p in $(pgrep -u postgres); do
            sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
        done
        echo "$sum"
    else
        awk '{print $14 + $15}' "/proc/$1/stat"
    fi
}
# gRPC calls answered so far, one "listener endpoint count" line per method, from the /metrics
# of the services whose metrics ports are given.
rpc_calls() { # METRICS_PORT...
    for port in "$@"; do
        curl -sf "http://127.0.0.1:$port/metrics" |
            sed -n 's/^cairn_http_requests_total{\(.*\)} \([0-9.e+]*\)$/\1 \2/p' |
            python3 -c '
import re, sys
counts = {}
for line in sys.stdin:
    labels, value = line.rsplit(" ", 1)
    l = dict(re.findall(r"(\w+)=\"([^\"]*)\"", labels))
    if l.get("listener", "").endswith("-rpc"):
        key = (l["listener"], l.get("endpoint", "?"))
        counts[key] = counts.get(key, 0) + float(value)
for (listener, endpoint), n in counts.items():
    print(listener, endpoint, int(n))
'
    done
}
hz=$(getconf CLK_TCK)

"$cairn" challtestsrv --management 127.0.0.1:8055 --dns 127.0.0.1:8053 \
    --http01 127.0.0.1:5012 --tlsalpn01 127.0.0.1:5011 >"$work/challtestsrv.log" 2>&1 &
pids+=($!)
wait_tcp 8055 challtestsrv

# What every configuration shares with testing/bench/cairn-bench.toml: validation against the
# challenge test server and the load generator, CT off, rate-limit buckets large enough for one
# address's thousands of orders (still evaluated on every request).
common_sections() {
    sed -n '/^\[va\]/,$p' "$repo/testing/bench/cairn-bench.toml"
}

database_url() { # DIR: SQLite in DIR, or a fresh PostgreSQL schema
    if [ -n "${PG_URL:-}" ]; then
        # Called in a command substitution (a subshell): the name must be unique without a
        # counter kept between calls.
        local name="cairn_bench_split_$$_$(date +%s%N)"
        psql "$PG_URL" -qc "CREATE SCHEMA $name" >/dev/null
        local sep='?'
        case "$PG_URL" in *\?*) sep='&' ;; esac
        echo "$PG_URL${sep}options=-csearch_path%3D$name"
    else
        mkdir -p "$1"
        echo "sqlite:$1/cairn.db"
    fi
}

# The load: ACCOUNTS accounts over DURATION against each directory given, in parallel (the
# accounts split evenly), every process in PROCS measured, the RPCs answered by the services
# whose metrics ports are in RPC_PORTS counted. Prints one summary.
#   run_load NAME "DIR1 ROOT1 [DIR2 ROOT2]" "role:pid role:pid ..." ["METRICS_PORT ..."]
run_load() {
    local name=$1 targets=($2) procs=($3) rpc_ports=(${4:-})
    [ -z "${PG_URL:-}" ] || procs+=(postgres:postgres)
    local n=$((${#targets[@]} / 2))
    local per=$((ACCOUNTS / n))
    declare -A before
    for rp in "${procs[@]}"; do before[$rp]=$(cpu_ticks "${rp#*:}"); done
    : >"$work/$name-rpc-before"
    : >"$work/$name-rpc-after"
    [ ${#rpc_ports[@]} -eq 0 ] || rpc_calls "${rpc_ports[@]}" >"$work/$name-rpc-before"
    echo "== $name: $ACCOUNTS accounts over $n WFE(s), $DURATION; load before: $(uptime)" >&2
    local gens=()
    for i in $(seq 0 $((n - 1))); do
        "$bench" acme --directory "${targets[$((2 * i))]}" --root "${targets[$((2 * i + 1))]}" \
            --accounts "$per" --duration "$DURATION" --mix single=1 \
            --challtestsrv http://127.0.0.1:8055 --json --quiet \
            >"$work/$name-$i.json" &
        gens+=($!)
    done
    for g in "${gens[@]}"; do wait "$g"; done
    local cpu=()
    for rp in "${procs[@]}"; do cpu+=("${rp%%:*}=$(($(cpu_ticks "${rp#*:}") - ${before[$rp]}))"); done
    [ ${#rpc_ports[@]} -eq 0 ] || rpc_calls "${rpc_ports[@]}" >"$work/$name-rpc-after"
    python3 - "$hz" "$work" "$name" "$n" "${cpu[@]}" >&2 <<'PY'
import json, sys
hz, work, name, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
runs = [json.load(open(f"{work}/{name}-{i}.json")) for i in range(n)]
certs = sum(r["certificates"] for r in runs)
in_dur = sum(r.get("certificates_in_duration", r["certificates"]) for r in runs)
dur = runs[0].get("duration_secs", runs[0]["elapsed_secs"])
p99 = max(r["endpoints"].get("finalize", {}).get("p99_ms", 0) for r in runs)
errors = sum(r.get("errors_total", 0) for r in runs)
print(f"   {in_dur / dur:.1f} certificates/s within the duration ({certs} in all), P99 finalize {p99:.0f} ms, errors {errors}")
total = 0.0
parts = []
for kv in sys.argv[5:]:
    role, ticks = kv.split("=")
    ms = int(ticks) * 1000 / hz / max(certs, 1)
    total += ms
    parts.append(f"{role} {ms:.2f}")
    if role == "postgres":
        parts[-1] += " (database)"
        total -= ms
print(f"   CPU per certificate (ms): {', '.join(parts)}; all Cairn processes {total:.2f}")
def calls(path):
    out = {}
    for line in open(path):
        listener, endpoint, n = line.split()
        out[(listener, endpoint)] = out.get((listener, endpoint), 0) + int(n)
    return out
before, after = calls(f"{work}/{name}-rpc-before"), calls(f"{work}/{name}-rpc-after")
per = {}
for key, n in after.items():
    per.setdefault(key[0], []).append((key[1], (n - before.get(key, 0)) / max(certs, 1)))
for listener, methods in sorted(per.items()):
    methods = sorted((m for m in methods if m[1] > 0), key=lambda m: -m[1])
    listed = ", ".join(f"{e.rsplit('/', 1)[-1]} {n:.2f}" for e, n in methods)
    print(f"   {listener} RPCs per certificate: {sum(n for _, n in methods):.2f} ({listed})")
PY
}

# A split role's configuration: TOML for `cairn <kind> serve`, as cairn/tests/split.rs writes it.
#   split_config ROLE IDENTITY PORT METRICS "RA_PORTS" NONCE_PORT DATABASE_URL
split_config() {
    local role=$1 identity=$2 port=$3 metrics=$4 ra_ports=($5) nonce=$6 db=$7
    local pki=$work/pki ras=""
    for p in "${ra_ports[@]}"; do ras+="{ url = \"https://127.0.0.1:$p\" }, "; done
    cat <<TOML
[server]
listen = "127.0.0.1:$port"
metrics_listen = "127.0.0.1:$metrics"
public_listen = "127.0.0.1:14190"
data_dir = "$work/split/data-$role"
database_url = "$db"
tls = true

[dap]
enabled = false

[rpc.tls]
cert = "$pki/$identity.pem"
key = "$pki/$identity.key.pem"
ca = "$pki/internal-ca.pem"

[services.sa]
listen = "127.0.0.1:14110"
allowed_clients = ["ra.cairn.internal", "ca.cairn.internal"]

[services.issuer]
listen = "127.0.0.1:14111"
allowed_clients = ["ra.cairn.internal"]

[services.ra]
listen = "127.0.0.1:$port"
allowed_clients = ["wfe.cairn.internal"]

[peers]
sa = { url = "https://127.0.0.1:14110" }
issuer = { url = "https://127.0.0.1:14111" }
ra = [${ras%, }]
TOML
    if [ -n "$nonce" ]; then
        cat <<TOML

[nonce]
listen = "127.0.0.1:$nonce"
prefix = "nonce-01"
allowed_clients = ["wfe.cairn.internal"]

[[wfe.nonce_services]]
prefix = "nonce-01"
address = "https://127.0.0.1:$nonce"
TOML
    fi
    echo
    common_sections
    remote_sections
}

# The remote perspectives the RA corroborates with (split1v): "name:rir:port:metrics".
REMOTE_VAS=(r0:ARIN:14130:14140 r1:RIPE:14131:14141 r2:APNIC:14132:14142)

# `[[va.remote]]` for each remote perspective, when REMOTES is set.
remote_sections() {
    [ -n "${REMOTES:-}" ] || return 0
    local pki=$work/pki v name rir port
    for v in "${REMOTE_VAS[@]}"; do
        IFS=: read -r name rir port _ <<<"$v"
        cat <<TOML

[[va.remote]]
name = "$name"
rir = "$rir"
url = "https://127.0.0.1:$port"
server_name = "va-$name.cairn.internal"
[va.remote.tls]
cert = "$pki/ra.pem"
key = "$pki/ra.key.pem"
ca = "$pki/internal-ca.pem"
TOML
    done
}

start_remote_vas() { # -> pids in $remote_pids
    local pki=$work/pki v name rir port metrics
    remote_pids=""
    for v in "${REMOTE_VAS[@]}"; do
        IFS=: read -r name rir port metrics <<<"$v"
        {
            cat <<TOML
listen = "127.0.0.1:$port"
metrics_listen = "127.0.0.1:$metrics"
perspective = "$name"
allowed_clients = ["ra.cairn.internal"]

[tls]
cert = "$pki/va-$name.pem"
key = "$pki/va-$name.key.pem"
ca = "$pki/internal-ca.pem"

TOML
            sed -n '/^\[va\]/,/^\[ct\]/p' "$repo/testing/bench/cairn-bench.toml" | sed '$d'
        } >"$work/split/va-$name.toml"
        RUST_LOG=${RUST_LOG:-warn} "$cairn" va serve --config "$work/split/va-$name.toml" \
            >"$work/split/va-$name.log" 2>&1 &
        pids+=($!)
        remote_pids+="va-$name:$! "
        wait_tcp "$port" "va-$name"
    done
}

start_role() { # KIND ROLE IDENTITY PORT METRICS "RA_PORTS" NONCE DB -> pid in $started
    local kind=$1 role=$2
    split_config "$role" "$3" "$4" "$5" "$6" "$7" "$8" >"$work/split/$role.toml"
    RUST_LOG=${RUST_LOG:-warn} "$cairn" "$kind" serve --config "$work/split/$role.toml" \
        >"$work/split/$role.log" 2>&1 &
    started=$!
    pids+=($started)
    wait_tcp "$4" "$role"
}

stop_all_but_challtestsrv() {
    for p in "${pids[@]:1}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]:1}"; do wait "$p" 2>/dev/null || true; done
    pids=("${pids[0]}")
}

for run in $RUNS; do
    case $run in
    serve)
        rm -rf "$work/serve" # each run starts empty, as the split runs do
        db=$(database_url "$work/serve")
        sed -n '1,/^\[va\]/p' "$repo/testing/bench/cairn-bench.toml" | sed '$d' >"$work/serve.toml"
        echo "database_url = \"$db\"" >>"$work/serve.toml"
        echo >>"$work/serve.toml"
        common_sections >>"$work/serve.toml"
        RUST_LOG=${RUST_LOG:-warn} "$cairn" serve --config "$work/serve.toml" \
            --data-dir "$work/serve" >"$work/serve.log" 2>&1 &
        pids+=($!)
        wait_tcp 14100 "cairn serve"
        run_load serve "https://localhost:14100/directory $work/serve/ca/tls-root.pem" "serve:${pids[-1]}"
        stop_all_but_challtestsrv
        ;;
    split1 | split1v | split2)
        rm -rf "$work/split" "$work/pki"
        mkdir -p "$work/split"
        services=(sa ca ra wfe nonce va-r0 va-r1 va-r2)
        "$cairn" admin pki dev --out "$work/pki" $(printf -- '--service %s ' "${services[@]}") >/dev/null
        db=$(database_url "$work/split/data-sa")
        start_role sa sa sa 14110 14120 "" "" "$db"; sa=$started
        start_role ca ca ca 14111 14121 "" "" "$db"; ca=$started
        if [ "$run" != split2 ]; then
            remote_pids="" rpc_ports="14120 14121 14122"
            if [ "$run" = split1v ]; then
                start_remote_vas
                rpc_ports+=" 14140 14141 14142"
            fi
            REMOTES=${remote_pids:+1} start_role ra ra ra 14112 14122 "" "" "$db"; ra=$started
            start_role wfe wfe wfe 14100 14123 "14112" "" "$db"; wfe=$started
            run_load "$run" "https://localhost:14100/directory $work/split/data-wfe/ca/tls-root.pem" \
                "sa:$sa ca:$ca ra:$ra wfe:$wfe $remote_pids" "$rpc_ports"
        else
            start_role nonce nonce nonce 14115 14125 "" 14115 "$db"; nonce=$started
            start_role ra ra1 ra 14112 14122 "" "" "$db"; ra1=$started
            start_role ra ra2 ra 14113 14124 "" "" "$db"; ra2=$started
            start_role wfe wfe1 wfe 14100 14123 "14112 14113" 14115 "$db"; wfe1=$started
            start_role wfe wfe2 wfe 14101 14126 "14112 14113" 14115 "$db"; wfe2=$started
            run_load "$run" "https://localhost:14100/directory $work/split/data-wfe1/ca/tls-root.pem https://localhost:14101/directory $work/split/data-wfe2/ca/tls-root.pem" \
                "sa:$sa ca:$ca nonce:$nonce ra1:$ra1 ra2:$ra2 wfe1:$wfe1 wfe2:$wfe2" \
                "14120 14121 14125 14122 14124"
        fi
        stop_all_but_challtestsrv
        ;;
    *)
        echo "unknown run $run (serve, split1, split1v, split2)" >&2
        exit 1
        ;;
    esac
done
