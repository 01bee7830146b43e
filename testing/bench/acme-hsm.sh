#!/usr/bin/env bash
# ACME issuance with the issuing intermediate's key in SoftHSM2 next to the same load with file
# keys, in one sitting: `cairn bench acme` (through acme-vs-pebble.sh, ONLY=cairn) against
#   1. `cairn serve` with testing/bench/cairn-bench.toml (development hierarchy, file keys), and
#   2. the same configuration plus `[ca.offline_root]`: a root and an intermediate made by
#      `cairn ceremony` in a temporary SoftHSM2 token directory, the intermediate's key used
#      through PKCS#11 (the session pool, `sessions = SESSIONS`).
# Runs alternate (file, HSM, file, HSM, …) RUNS times.
#
#   CAIRN_BIN=path/to/release/cairn ACCOUNTS=100 DURATION=30s RUNS=2 testing/bench/acme-hsm.sh
#
# Needs softhsm2 (softhsm2-util and the module) and openssl.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cairn=${CAIRN_BIN:?set CAIRN_BIN to a release build of cairn (cairn-bench beside it)}
RUNS=${RUNS:-2}
SESSIONS=${SESSIONS:-8}
module=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so /usr/lib64/pkcs11/libsofthsm2.so; do
    [ -f "$m" ] && module=$m && break
done
[ -n "$module" ] || { echo "the SoftHSM2 module is not installed (apt-get install softhsm2)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/tokens" >"$work/softhsm2.conf"
export SOFTHSM2_CONF=$work/softhsm2.conf
export CAIRN_BENCH_HSM_PIN=4711
for token in bench-root bench-issuing; do
    softhsm2-util --init-token --free --label "$token" --so-pin 0000 --pin "$CAIRN_BENCH_HSM_PIN" >/dev/null
done

key() { # TOKEN LABEL [ID]
    printf 'module = "%s"\ntoken_label = "%s"\npin_env = "CAIRN_BENCH_HSM_PIN"\nkey_label = "%s"\n' "$module" "$1" "$2"
    [ -z "${3:-}" ] || printf 'key_id = "%s"\n' "$3"
}
today=$(date -u +%Y-%m-%dT00:00:00Z)
later=$(date -u -d '+1 year' +%Y-%m-%dT00:00:00Z)
step() { # NAME (step text on stdin)
    cat >"$work/$1.toml"
    (cd "$work" && "$cairn" ceremony "$1.toml" >"$work/$1.out")
}
{ echo '[generate_key]'; echo 'algorithm = "ecdsa-p384"'; echo 'public_key_output = "root.pub.pem"'
  echo '[generate_key.key]'; key bench-root root 01; } | step 1-root-key
{ echo '[generate_key]'; echo 'algorithm = "ecdsa-p256"'; echo 'public_key_output = "int.pub.pem"'
  echo '[generate_key.key]'; key bench-issuing int 02; } | step 2-int-key
{ echo '[root]'; echo 'key_algorithm = "ecdsa-p384"'; echo "not_before = \"$today\""
  echo "not_after = \"$later\""; echo 'output = "root.pem"'; echo '[root.key]'; key bench-root root
  echo '[root.subject]'; echo 'common_name = "Cairn Bench Root"'; echo 'organization = "Cairn Bench"'
  echo 'country = "DE"'; } | step 3-root
{ echo '[intermediate]'; echo "not_before = \"$today\""; echo "not_after = \"$later\""
  echo 'crl_url = "http://ca.example/root.crl"'; echo 'output = "int.pem"'
  echo '[intermediate.issuer]'; echo 'certificate = "root.pem"'; echo '[intermediate.issuer.key]'
  key bench-root root; echo '[intermediate.subject_key]'; echo 'public_key = "int.pub.pem"'
  echo 'algorithm = "ecdsa-p256"'; echo '[intermediate.subject]'; echo 'common_name = "Cairn Bench E1"'
  echo 'organization = "Cairn Bench"'; echo 'country = "DE"'; } | step 4-intermediate
{ echo '[arl]'; echo 'number = 1'; echo "this_update = \"$today\""
  echo "next_update = \"$(date -u -d '+300 days' +%Y-%m-%dT00:00:00Z)\""
  echo 'output = "root.crl"'; echo '[arl.issuer]'; echo 'certificate = "root.pem"'
  echo '[arl.issuer.key]'; key bench-root root; } | step 5-arl

cp "$repo/testing/bench/cairn-bench.toml" "$work/file.toml"
{ cat "$repo/testing/bench/cairn-bench.toml"; echo
  echo '[ca.offline_root]'; echo "root_certificate = \"$work/root.pem\""; echo "arl = \"$work/root.crl\""
  echo "intermediate_certificate = \"$work/int.pem\""
  echo "intermediate_key = { pkcs11 = { module = \"$module\", token_label = \"bench-issuing\", pin_env = \"CAIRN_BENCH_HSM_PIN\", key_label = \"int\", sessions = $SESSIONS } }"
} >"$work/hsm.toml"

for run in $(seq 1 "$RUNS"); do
    for keys in file hsm; do
        echo "=== run $run, $keys keys" >&2
        CAIRN_BIN=$cairn CAIRN_CONFIG=$work/$keys.toml ONLY=cairn "$repo/testing/bench/acme-vs-pebble.sh"
    done
done
