#!/usr/bin/env bash
# The project's test command: prepares the Python tools the integration tests drive (certbot,
# pkilint) in .venv/, builds the cairn and cairn-bench binaries (the tests run both; cargo test
# builds only the first) and runs the whole workspace's tests.
#
#   bash testing/test.sh [extra cargo test args, e.g. -p cairn --test certbot -- --nocapture]
#
# CAIRN_TEST_POSTGRES_URL and CAIRN_TEST_REDIS_URL, when set, reach the tests unchanged. Without
# them the tests that need PostgreSQL or Redis skip those parts, except under CI=true (as .ci/run
# sets it), where a missing or unreachable service fails the test (testing/services).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

venv="$repo/.venv"
requirements="$repo/testing/requirements.txt"
python="${PYTHON:-python3}"

echo "==> Python tools (certbot, pkilint) in .venv/"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
fi
# Idempotent and quick when everything is already installed.
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
for tool in certbot lint_cabf_serverauth_cert moto_server; do
    if [ ! -x "$venv/bin/$tool" ]; then
        echo "testing/test.sh: $venv/bin/$tool is missing after pip install" >&2
        exit 1
    fi
done
echo "    $("$venv/bin/certbot" --version 2>&1), pkilint $("$venv/bin/python" -m pip show pkilint 2>/dev/null | sed -n 's/^Version: //p')"

echo "==> cargo build -p cairn -p cairn-bench --locked"
cargo build -p cairn -p cairn-bench --locked

# The whole workspace unless the extra arguments pick packages (-p/--package before any `--`).
scope=(--workspace)
for arg in "$@"; do
    case "$arg" in
        --) break ;;
        -p | -p* | --package | --package=*) scope=() ;;
    esac
done

export CAIRN_VENV="$venv"
echo "==> CAIRN_VENV=$CAIRN_VENV cargo test ${scope[*]} --locked $*"
cargo test "${scope[@]}" --locked "$@"
