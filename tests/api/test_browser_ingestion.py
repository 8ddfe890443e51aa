"""What analytics.js sends from a web page, as it sends it: each call to `<apiHost>/<first
letter of its type>` (batches to `/b`), `Content-Type: text/plain`, the write key in the
body, from another origin (segmentio/analytics-next, plugins/segmentio)."""

from __future__ import annotations

import json

from sqlmodel import select

from orchestrator.storage.models import Event
from tests.web.test_access import make_key

SITE = {"Origin": "https://shop.example", "Content-Type": "text/plain"}


def page_call(write_key: str, message_id: str = "ajs-1") -> str:
    return json.dumps(
        {
            "type": "page",
            "anonymousId": "b9f1c2d0-visitor",
            "messageId": message_id,
            "name": "Boots",
            "properties": {"url": "https://shop.example/boots?utm_source=news", "path": "/boots", "title": "Boots"},
            "context": {
                "page": {"url": "https://shop.example/boots?utm_source=news", "path": "/boots", "referrer": ""},
                "campaign": {"source": "news"},
                "library": {"name": "analytics.js", "version": "next-1.70.0"},
                "userAgent": "Mozilla/5.0",
            },
            "integrations": {},
            "writeKey": write_key,
            "sentAt": "2026-03-02T17:00:00.000Z",
            "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
        }
    )


async def stored(runtime) -> list[Event]:
    async with runtime.sessions() as session:
        return list((await session.exec(select(Event).order_by(Event.id))).all())


async def test_a_page_call_from_analytics_js_is_stored_and_readable_cross_origin(client, runtime):
    key = await make_key(runtime, "ingest")
    response = await client.post("/v1/p", content=page_call(key), headers=SITE)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    [event] = await stored(runtime)
    assert (event.type, event.anonymous_id, event.name) == ("page", "b9f1c2d0-visitor", "Boots")
    assert event.context["page"]["path"] == "/boots"


async def test_a_batch_from_analytics_js_is_stored(client, runtime):
    key = await make_key(runtime, "ingest")
    calls = [json.loads(page_call(key, f"ajs-{n}")) for n in range(3)]
    track = {"type": "track", "event": "Product Viewed", "anonymousId": "b9f1c2d0-visitor", "messageId": "ajs-t"}
    body = json.dumps({"writeKey": key, "batch": [*calls, track], "sentAt": "2026-03-02T17:00:00.000Z"})
    response = await client.post("/v1/b", content=body, headers=SITE)
    assert response.status_code == 200 and response.json()["accepted"] == 4
    assert [e.type for e in await stored(runtime)] == ["page", "page", "page", "track"]


async def test_a_wrong_or_missing_write_key_is_refused_and_the_refusal_is_readable(client, runtime):
    await make_key(runtime, "ingest")
    ops = await make_key(runtime, "ops")
    for write_key, status in (("not-a-key", 401), (ops, 403)):
        response = await client.post("/v1/p", content=page_call(write_key), headers=SITE)
        assert response.status_code == status and response.headers["access-control-allow-origin"] == "*"
    missing = json.loads(page_call("x"))
    del missing["writeKey"]
    response = await client.post("/v1/p", content=json.dumps(missing), headers=SITE)
    assert response.status_code == 401
    assert await stored(runtime) == []


async def test_a_preflight_is_answered_and_other_methods_are_not_served(client):
    preflight = await client.options(
        "/v1/t", headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert preflight.headers["access-control-allow-methods"] == "POST"
    assert (await client.get("/v1/t")).status_code == 405
