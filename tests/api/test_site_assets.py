"""The service serves the vendored analytics.js to websites, without a key."""

from __future__ import annotations

import hashlib

from orchestrator.api.site_assets import SITE_VENDOR
from tests.web.test_access import make_key


async def test_analytics_js_is_served_as_vendored_to_anyone(client, runtime):
    await make_key(runtime, "admin")  # the API is closed: the script still needs no key
    response = await client.get("/site/analytics-next.min.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    [version, checksum] = (SITE_VENDOR / "VERSIONS").read_text().splitlines()
    assert version.startswith("@segment/analytics-next ")
    assert checksum == f"{hashlib.sha256(response.content).hexdigest()}  analytics-next.min.js"
    assert b"AnalyticsNext" in response.content  # the UMD build's global


async def test_the_folder_is_not_listed(client):
    assert (await client.get("/site/")).status_code == 404
