#!/usr/bin/env bash
# Run the test suite, on SQLite and on PostgreSQL (ORCHESTRATOR_TEST_POSTGRES_URL, default
# postgresql://postgres@127.0.0.1:5432/test), then the house rules (`ruff check`, `ruff format --check`). With CI=true
# a missing PostgreSQL fails. Arguments go to pytest: `./test.sh -m unit`, `./test.sh tests/engine`.
# Tiers and what CI runs: docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh test
tests=0
.venv/bin/python -m pytest "$@" || tests=$?
# After the tests, so a lint finding neither hides nor blocks test results; it still fails the run.
lint=0
.venv/bin/ruff check . || lint=$?
.venv/bin/ruff format --check . || lint=$?
if [ "$tests" -ne 0 ]; then exit "$tests"; fi
exit "$lint"
