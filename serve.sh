#!/usr/bin/env bash
# Run the service (API + worker in one process). Zero configuration: SQLite and local providers.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/orchestrator serve "$@"
