#!/usr/bin/env bash
# Create .venv and install the project into it; re-runs only when pyproject.toml changed.
# With the `test` extra it also makes sure Debian's Chromium is there for the console's
# browser tests (Playwright drives it; Playwright's own browser download does not work offline).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)-${extras:-base}"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
  touch "$stamp"
fi
if [ "$extras" = "test" ] && [ ! -x "${ORCHESTRATOR_CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium for the console's browser tests (once)..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "no Chromium at /usr/bin/chromium and not root: the browser tests will be skipped" \
         "(install Debian's 'chromium' package, or set ORCHESTRATOR_CHROMIUM)" >&2
  fi
fi
