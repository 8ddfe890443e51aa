#!/usr/bin/env bash
# Re-vendor the front-end assets from the npm registry (run by a developer when upgrading,
# never by users: the files are committed, so nothing is fetched from a CDN at run time and no
# build step runs at install time): the console's htmx and Chart.js, and Segment's analytics.js
# that the service serves to websites (docs/website-kpis.md). Versions are pinned here and in
# each VERSIONS file.
set -euo pipefail
cd "$(dirname "$0")/.."
HTMX=2.0.11
CHARTJS=4.5.1
ANALYTICS_NEXT=1.84.3
out=orchestrator/console/static/vendor
site=orchestrator/api/site_vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "htmx.org@$HTMX" "chart.js@$CHARTJS" "@segment/analytics-next@$ANALYTICS_NEXT" >/dev/null && for f in *.tgz; do mkdir "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done)
cp "$work/htmx.org-$HTMX/package/dist/htmx.min.js" "$out/htmx.min.js"
cp "$work/htmx.org-$HTMX/package/LICENSE" "$out/htmx.LICENSE"
cp "$work/chart.js-$CHARTJS/package/dist/chart.umd.min.js" "$out/chart.umd.min.js"
cp "$work/chart.js-$CHARTJS/package/LICENSE.md" "$out/chart.js.LICENSE.md"
printf 'htmx.org %s\nchart.js %s\n' "$HTMX" "$CHARTJS" > "$out/VERSIONS"
(cd "$out" && sha256sum htmx.min.js chart.umd.min.js >> VERSIONS)
echo "vendored into $out:"; cat "$out/VERSIONS"
# The UMD build (global `AnalyticsNext`), not standalone.js: that one fetches its settings and
# plugins from cdn.segment.com; this one takes its settings inline (the snippet passes them).
cp "$work/segment-analytics-next-$ANALYTICS_NEXT/package/dist/umd/index.js" "$site/analytics-next.min.js"
cp "$work/segment-analytics-next-$ANALYTICS_NEXT/package/LICENSE.MD" "$site/analytics-next.LICENSE.md"
printf '@segment/analytics-next %s (dist/umd/index.js)\n' "$ANALYTICS_NEXT" > "$site/VERSIONS"
(cd "$site" && sha256sum analytics-next.min.js >> VERSIONS)
echo "vendored into $site:"; cat "$site/VERSIONS"
