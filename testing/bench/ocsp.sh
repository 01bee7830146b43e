#!/usr/bin/env bash
# OCSP responder throughput with wrk on loopback: GET /ocsp answered from the cache, and with
# live signing (a request carrying a nonce, echo_nonce = true: a storage lookup and a fresh
# signature per request). Starts an OCSP-enabled CA on a temporary SQLite database, issues one
# certificate over ACME, then runs wrk twice (see ocsp_throughput_with_wrk in
# cairn/tests/ocsp.rs).
#
#   testing/bench/ocsp.sh                       # release build, 10 s per run, 32 connections
#   PROFILE=dev OCSP_BENCH_DURATION=20s OCSP_BENCH_CONNECTIONS=64 testing/bench/ocsp.sh
#
# Needs wrk (Debian: apt-get install wrk) and openssl.
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in wrk openssl; do
    command -v "$tool" >/dev/null || { echo "ocsp.sh: $tool is not installed" >&2; exit 1; }
done
echo "machine: $(nproc) CPUs, $(uname -m); $(uptime)"
exec cargo test --locked -p cairn --profile "${PROFILE:-release}" --test ocsp \
    -- --ignored --exact ocsp_throughput_with_wrk --nocapture
