#!/usr/bin/env bash
# The long failure sweeps, in full (the default suite runs a sample of each):
#
#   bash tests/sweep.sh [extra pytest arguments...]
#
# Runs every test marked `slow` (crash sweeps, the random kill loop, CC-05 without
# UIDPLUS) with SYNCD_TEST_ALL=1, plus the Cyrus interop tests, on 2 workers.
# Expect several minutes; `tests/run.sh --all` runs the same sweeps inside the whole suite.
set -uo pipefail
project=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$project" || exit 1
bash tests/cyrus-setup.sh >/dev/null || { echo "sweep: tests/cyrus-setup.sh failed"; exit 1; }
export SYNCD_TEST_ALL=1
exec "$project/.venv/bin/python" -m pytest -n "${SYNCD_TEST_WORKERS:-2}" -m "slow or cyrus" \
    -p no:cacheprovider "$@" tests
