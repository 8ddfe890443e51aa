"""The console's Segments pages: the list in the nav, a segment's size chart data, its live
preview and its recent changes, for a read-only key."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from orchestrator.auth.keys import create_key
from orchestrator.segments.refresh import refresh_segments
from tests.conftest import START


async def test_segments_list_and_page_show_members_size_and_preview(client, runtime):
    async with runtime.sessions() as session, session.begin():
        key = (await create_key(session, "ops", "ops", runtime.clock.now())).key
        ingest = (await create_key(session, "cdp", "ingest", runtime.clock.now())).key
    await refresh_segments(runtime)
    for days_ago, order_id in ((30, "A-1"), (1, "A-2")):
        sent = await client.post(
            "/v1/track",
            json={
                "userId": "ann",
                "event": "Order Completed",
                "properties": {"order_id": order_id},
                "timestamp": (START - timedelta(days=days_ago)).isoformat(),
            },
            headers={"Authorization": f"Bearer {ingest}"},
        )
        assert sent.status_code == 200, sent.text
    await refresh_segments(runtime, sweep=True)
    assert (await client.post("/login", data={"key": key})).status_code == 303

    listing = await client.get("/segments")
    assert listing.status_code == 200
    assert '<a href="/segments" aria-current="page">Segments</a>' in listing.text
    row = re.search(r'<tr data-segment="repeat-buyers-90d">.*?</tr>', listing.text, re.S).group(0)
    assert "Repeat buyers (90 days)" in row and '<td class="n">1</td>' in row

    page = await client.get("/segments/repeat-buyers-90d")
    assert page.status_code == 200
    chart = json.loads(
        re.search(r'<script type="application/json" id="size-data">(.*?)</script>', page.text, re.S).group(1)
    )
    assert chart["members"] == [0, 1]
    assert "entered" in page.text
    # The live preview is its own request, which the page makes once shown: the page reads
    # only what the worker stored, whatever the preview costs.
    assert 'hx-get="/segments/repeat-buyers-90d/preview" hx-trigger="load"' in page.text
    assert '<tr data-customer="ann">' not in page.text
    preview = await client.get("/segments/repeat-buyers-90d/preview")
    assert preview.status_code == 200
    assert '<tr data-customer="ann">' in preview.text
    assert re.search(r'data-kpi="matching"><div class="label">Matching now</div><div class="value">1<', preview.text)

    missing = await client.get("/segments/no-such-segment")
    assert missing.status_code == 404 and "no segment" in missing.text
    missing = await client.get("/segments/no-such-segment/preview")
    assert missing.status_code == 404 and "no segment" in missing.text
