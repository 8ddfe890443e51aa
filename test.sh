#!/usr/bin/env bash
# Run the test suite, on SQLite and on PostgreSQL (ORCHESTRATOR_TEST_POSTGRES_URL, default
# postgresql://postgres@127.0.0.1:5432/test), then the house rules (`ruff check`, `ruff format --check`). With CI=true
# a missing PostgreSQL fails. Arguments go to pytest: `./test.sh -m unit`, `./test.sh tests/engine`.
# Two phases: every test that can share the machine, on ORCHESTRATOR_TEST_WORKERS pytest-xdist
# workers (default 2; 1 runs them in this process), then the `alone` ones (they restart
# PostgreSQL) by themselves. Tiers, phases and what CI runs: docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh test
workers="${ORCHESTRATOR_TEST_WORKERS:-2}"
parallel=()
if [ "$workers" -gt 1 ]; then parallel=(-n "$workers" --dist loadfile); fi
# pytest's 5 is "no tests collected": a phase the arguments leave empty has nothing to fail.
phase() {
  local status=0
  ORCHESTRATOR_TEST_PHASE="$1" .venv/bin/python -m pytest "${@:2}" || status=$?
  if [ "$status" -eq 5 ]; then status=0; fi
  return "$status"
}
tests=0
phase shared "${parallel[@]}" "$@" || tests=$?
phase alone "$@" || { status=$?; [ "$tests" -ne 0 ] || tests=$status; }
# After the tests, so a lint finding neither hides nor blocks test results; it still fails the run.
lint=0
.venv/bin/ruff check . || lint=$?
.venv/bin/ruff format --check . || lint=$?
if [ "$tests" -ne 0 ]; then exit "$tests"; fi
exit "$lint"
