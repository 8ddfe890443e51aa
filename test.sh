#!/usr/bin/env bash
# Run the whole test suite, on SQLite and on PostgreSQL (ORCHESTRATOR_TEST_POSTGRES_URL,
# default postgresql://postgres@127.0.0.1:5432/test). With CI=true a missing PostgreSQL fails.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh test
exec .venv/bin/python -m pytest "$@"
