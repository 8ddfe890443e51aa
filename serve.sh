#!/usr/bin/env bash
# Run the service (API + worker in one process). Zero configuration: SQLite and the bundled
# fake providers. `./serve.sh --port 9000` passes options to `orchestrator serve`;
# `./serve.sh demo` (or any other subcommand) runs that `orchestrator` command instead.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then
  exec .venv/bin/orchestrator "$@"
fi
exec .venv/bin/orchestrator serve "$@"
