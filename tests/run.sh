#!/usr/bin/env bash
# The one command that sets up and runs syncd's whole test suite:
#
#   bash tests/run.sh [--all] [extra pytest arguments...]
#
# --all runs the long sweeps (tests marked `slow`) in full: it sets SYNCD_TEST_ALL=1,
# which the `full_sweep` fixture reports; by default they run a sample.
#
# 1. contrib/setup.sh   -- system packages (incl. Dovecot, kept from running system-wide)
#                          and the .venv; fast when already done
# 2. ruff check         -- syncd plugins tests benchmarks
# 3. mypy               -- strict, configured in pyproject.toml
# 4. pytest -n 2        -- unit tests and integration tests against private Dovecots
#
# Every step runs even when an earlier check fails, so one run shows everything; the
# exit status is non-zero if any step failed, or if pytest collected no test at all.
set -uo pipefail

project=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$project" || exit 1

if [ "${1:-}" = "--all" ]; then
    export SYNCD_TEST_ALL=1
    shift
fi

if ! bash contrib/setup.sh; then
    echo "tests/run.sh: FAILED: contrib/setup.sh (nothing was tested)"
    exit 1
fi
bin="$project/.venv/bin"
failed=()

lint_paths=()
for p in syncd devserver plugins tests benchmarks; do [ -e "$p" ] && lint_paths+=("$p"); done
echo "== ruff check ${lint_paths[*]}"
"$bin/ruff" check "${lint_paths[@]}" || failed+=(ruff)

echo "== mypy"
"$bin/mypy" || failed+=(mypy)

# Two workers on a 2-core machine: each starts its own Dovecot; more would only thrash.
workers=${SYNCD_TEST_WORKERS:-2}
echo "== pytest -n $workers $*"
"$bin/python" -m pytest -n "$workers" "$@"
status=$?
case $status in
    0) ;;
    5) echo "pytest collected no tests"; failed+=("pytest (no tests ran)") ;;
    *) failed+=("pytest (exit $status)") ;;
esac

if [ ${#failed[@]} -eq 0 ]; then
    echo "tests/run.sh: OK: ruff, mypy and pytest passed"
    exit 0
fi
echo "tests/run.sh: FAILED: ${failed[*]}"
exit 1
