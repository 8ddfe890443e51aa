"""What analytics.js sends from a web page, as it sends it: each call to `<apiHost>/<first
letter of its type>` (batches to `/b`), `Content-Type: text/plain`, the write key in the
body and as HTTP Basic, from another origin (segmentio/analytics-next 1.84.3,
plugins/segmentio); tests/api/test_analytics_js.py runs the library itself in Chromium."""

from __future__ import annotations

import base64
import json

import pytest
from sqlmodel import select

from orchestrator.storage.models import Event
from tests.web.test_access import make_key

SITE = {"Origin": "https://shop.example", "Content-Type": "text/plain"}
ELSEWHERE = {"Origin": "https://elsewhere.example", "Content-Type": "text/plain"}


@pytest.fixture(autouse=True)
def shop_may_send(runtime):
    runtime.settings.site_origins = ["https://shop.example"]


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
    key = await make_key(runtime, "site")
    response = await client.post("/v1/p", content=page_call(key), headers=SITE)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "https://shop.example"
    [event] = await stored(runtime)
    assert (event.type, event.anonymous_id, event.name) == ("page", "b9f1c2d0-visitor", "Boots")
    assert event.context["page"]["path"] == "/boots"


async def test_a_batch_from_analytics_js_is_stored(client, runtime):
    key = await make_key(runtime, "site")
    calls = [json.loads(page_call(key, f"ajs-{n}")) for n in range(3)]
    track = {"type": "track", "event": "Product Viewed", "anonymousId": "b9f1c2d0-visitor", "messageId": "ajs-t"}
    body = json.dumps({"writeKey": key, "batch": [*calls, track], "sentAt": "2026-03-02T17:00:00.000Z"})
    response = await client.post("/v1/b", content=body, headers=SITE)
    assert response.status_code == 200 and response.json()["accepted"] == 4
    assert [e.type for e in await stored(runtime)] == ["page", "page", "page", "track"]


async def test_a_wrong_or_missing_write_key_is_refused_and_the_refusal_is_readable(client, runtime):
    await make_key(runtime, "site")
    ops = await make_key(runtime, "ops")
    for write_key, status in (("not-a-key", 401), (ops, 403)):
        response = await client.post("/v1/p", content=page_call(write_key), headers=SITE)
        assert response.status_code == status, response.text
        assert response.headers["access-control-allow-origin"] == "https://shop.example"
        assert response.json()["detail"].startswith("writeKey: ")
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
    assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
    assert preflight.headers["access-control-allow-methods"] == "POST"
    allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "authorization", "x-retry-count"} <= allowed  # what analytics.js 1.84 sends
    assert (await client.get("/v1/t")).status_code == 405


async def test_the_write_key_as_analytics_js_sends_it_twice_in_the_body_and_as_basic(client, runtime):
    key = await make_key(runtime, "site")
    basic = {**SITE, "Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode(), "X-Retry-Count": "1"}
    response = await client.post("/v1/p", content=page_call(key), headers=basic)
    assert response.status_code == 200, response.text
    assert len(await stored(runtime)) == 1


async def test_a_key_that_can_read_is_refused_as_a_write_key(client, runtime):
    """A key in a web page is public: an admin key pasted there must not work, or it would be
    out in the open with everything it can read and change; nor a server's ingest key, whose
    calls may change customers' addresses and consent without proof."""
    await make_key(runtime, "site")
    for role in ("admin", "marketer", "ops", "ingest"):
        key = await make_key(runtime, role, f"{role}-in-a-page")
        response = await client.post("/v1/p", content=page_call(key), headers=SITE)
        assert response.status_code == 403
        assert response.json()["detail"] == (
            f"writeKey: key '{role}-in-a-page' has role '{role}'; POST on browser event ingestion routes needs site"
        )
    assert await stored(runtime) == []


async def test_a_site_not_listed_is_refused_before_its_key_is_read(client, runtime):
    key = await make_key(runtime, "site")
    response = await client.post("/v1/p", content=page_call(key), headers=ELSEWHERE)
    assert response.status_code == 403
    assert "ORCHESTRATOR_SITE_ORIGINS" in response.json()["detail"]
    assert "'https://elsewhere.example'" in response.json()["detail"]
    assert "access-control-allow-origin" not in response.headers  # its page cannot read even that
    preflight = await client.options("/v1/p", headers={**ELSEWHERE, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    assert await stored(runtime) == []


async def test_no_site_may_send_until_one_is_listed_and_a_star_lets_any(client, runtime):
    key = await make_key(runtime, "site")
    runtime.settings.site_origins = []  # the default
    assert (await client.post("/v1/p", content=page_call(key, "m-1"), headers=SITE)).status_code == 403
    runtime.settings.site_origins = ["*"]
    response = await client.post("/v1/p", content=page_call(key, "m-2"), headers=ELSEWHERE)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://elsewhere.example"
    assert [e.message_id for e in await stored(runtime)] == ["m-2"]


async def test_a_server_sending_on_the_browser_paths_has_no_origin_to_check(client, runtime):
    key = await make_key(runtime, "site")
    runtime.settings.site_origins = []
    response = await client.post("/v1/p", content=page_call(key), headers={"Content-Type": "text/plain"})
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


async def test_an_invalid_call_from_a_page_is_a_readable_422_naming_the_field(client, runtime):
    key = await make_key(runtime, "site")
    call = json.loads(page_call(key))
    call["timestamp"] = "not a time"
    response = await client.post("/v1/p", content=json.dumps(call), headers=SITE)
    assert response.status_code == 422
    assert response.headers["access-control-allow-origin"] == "https://shop.example"
    assert ["body", "timestamp"] in [error["loc"] for error in response.json()["detail"]]


def test_a_site_origin_is_written_as_browsers_send_it():
    from pydantic import ValidationError

    from orchestrator.config import Settings

    assert Settings(site_origins=["https://Shop.example/", "http://localhost:3000", "*"]).site_origins == [
        "https://shop.example",
        "http://localhost:3000",
        "*",
    ]
    for wrong in ("shop.example", "https://shop.example/boots", "ftp://shop.example"):
        with pytest.raises(ValidationError, match="site_origins"):
            Settings(site_origins=[wrong])


async def test_refusals_made_before_ingestion_are_readable_by_a_listed_site_only(client, runtime):
    """The body limits (413, 415, 400) and the URL check (422) answer before the ingestion
    does: a listed site's page reads them as it reads the others; another site's cannot."""
    key = await make_key(runtime, "site")
    too_large = json.dumps({**json.loads(page_call(key)), "padding": "x" * runtime.settings.max_call_bytes})
    refusals = {
        413: dict(content=too_large),
        415: dict(content=page_call(key), headers={"Content-Encoding": "br"}),
        400: dict(content=b"\x1f\x8b not gzip", headers={"Content-Encoding": "gzip"}),
        422: dict(content=page_call(key), params={"v": "a\x00b"}),
    }
    for status, request in refusals.items():
        for origin, allowed in (("https://shop.example", "https://shop.example"), ("https://elsewhere.example", None)):
            headers = {**SITE, "Origin": origin, **request.get("headers", {})}
            response = await client.post("/v1/p", **{**request, "headers": headers})
            assert response.status_code == status, response.text
            assert response.headers.get("access-control-allow-origin") == allowed
    server_path = await client.post("/v1/page", content=too_large, headers=SITE)
    assert server_path.status_code == 413 and "access-control-allow-origin" not in server_path.headers
    assert await stored(runtime) == []
