"""`GET /site/analytics-next.min.js`: Segment's analytics.js, served by the service itself.

A site loads the browser library from the host it sends its events to, so no CDN is involved
at run time and the version is the one the browser test drives (tests/api/test_analytics_js.py).
The file is vendored from npm by `scripts/vendor-console-assets.sh` (version in
`site_vendor/VERSIONS`), never fetched; docs/website-kpis.md has the snippet that loads it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

SITE_VENDOR = Path(__file__).parent / "site_vendor"


def mount_site_assets(app: FastAPI) -> None:
    # Public, like any script a website includes: no key, and nothing in it but the library.
    app.mount("/site", StaticFiles(directory=SITE_VENDOR), name="site-assets")
