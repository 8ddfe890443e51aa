#!/usr/bin/env bash
# Re-vendor the console's front-end assets from the npm registry (run by a developer when
# upgrading, never by users: the files are committed, so the console works offline and no
# build step runs at install time). Versions are pinned here and in the console's README line.
set -euo pipefail
cd "$(dirname "$0")/.."
HTMX=2.0.11
CHARTJS=4.5.1
out=orchestrator/console/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "htmx.org@$HTMX" "chart.js@$CHARTJS" >/dev/null && for f in *.tgz; do mkdir "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done)
cp "$work/htmx.org-$HTMX/package/dist/htmx.min.js" "$out/htmx.min.js"
cp "$work/htmx.org-$HTMX/package/LICENSE" "$out/htmx.LICENSE"
cp "$work/chart.js-$CHARTJS/package/dist/chart.umd.min.js" "$out/chart.umd.min.js"
cp "$work/chart.js-$CHARTJS/package/LICENSE.md" "$out/chart.js.LICENSE.md"
printf 'htmx.org %s\nchart.js %s\n' "$HTMX" "$CHARTJS" > "$out/VERSIONS"
(cd "$out" && sha256sum htmx.min.js chart.umd.min.js >> VERSIONS)
echo "vendored into $out:"; cat "$out/VERSIONS"
