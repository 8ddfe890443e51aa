"""analytics.js's paths, and the one place that decides their CORS headers.

A page may call these paths from the sites in `ORCHESTRATOR_SITE_ORIGINS` (docs/website-kpis.md).
Every answer to such a page carries `Access-Control-Allow-Origin: <its origin>`, refusals
included, wherever they are made (the body limits' 413, 415 and 400 in `request_bodies.py`,
the URL check's 422, the ingestion's own answers), so its script can read why; a page of a
site not listed gets none, so it cannot even read its refusal.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import Scope

# analytics.js's paths (with `apiHost: "<our host>/v1"`) → ours
BROWSER_PATHS = {
    "/v1/t": "/v1/track",
    "/v1/i": "/v1/identify",
    "/v1/p": "/v1/page",
    "/v1/s": "/v1/screen",
    "/v1/g": "/v1/group",
    "/v1/a": "/v1/alias",
    "/v1/b": "/v1/batch",
}
# What analytics.js sends besides the body: its write key as Basic, and a retry's number.
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "POST",
    "Access-Control-Allow-Headers": "Content-Type, Authorization, Content-Encoding, X-Retry-Count",
    "Access-Control-Max-Age": "86400",
}


def page_origin(scope: Scope) -> str | None:
    return Headers(scope=scope).get("origin")


def cors_headers(scope: Scope) -> dict[str, str] | None:
    """The CORS headers of any answer on a browser path; None for a page of a site not listed.
    A request without `Origin` (a server, curl) has no page to answer: `Vary` alone."""
    origin = page_origin(scope)
    if origin is None:
        return {"Vary": "Origin"}
    site_origins = scope["app"].state.runtime.settings.site_origins
    if "*" not in site_origins and origin.lower() not in site_origins:
        return None
    return {"Vary": "Origin", "Access-Control-Allow-Origin": origin}


def refusal_cors_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """`cors_headers` as raw ASGI headers, for a middleware's refusal on any path: none off the
    browser paths and for a site not listed."""
    headers = cors_headers(scope) if scope.get("path") in BROWSER_PATHS else None
    return [(name.lower().encode(), value.encode("latin-1")) for name, value in (headers or {}).items()]
