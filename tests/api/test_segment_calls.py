"""Segment's call types over HTTP: each route, anonymous visitors, identity links, consent
traits, HTTP Basic keys (the official client itself: test_segment_client.py)."""

from __future__ import annotations

import base64

from sqlmodel import select

from orchestrator.storage.feedback_models import Consent
from orchestrator.storage.models import Customer, Event, IdentityLink
from tests.api.test_events import count
from tests.web.test_access import make_key


def basic(user: str, password: str = "") -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def rows(runtime, model) -> list:
    async with runtime.sessions() as session:
        return list((await session.exec(select(model))).all())


async def test_each_segment_call_type_has_its_route(client, runtime):
    calls = {
        "/v1/page": {"anonymousId": "v1", "name": "Home", "properties": {"url": "https://shop.example/"}},
        "/v1/screen": {"userId": "ann", "name": "Cart"},
        "/v1/group": {"userId": "ann", "groupId": "acme", "traits": {"employees": 12}},
        "/v1/alias": {"userId": "ann", "previousId": "v1"},
    }
    for path, body in calls.items():
        response = await client.post(path, json=body)
        assert response.status_code == 200, (path, response.text)
    events = await rows(runtime, Event)
    assert sorted(e.type for e in events) == ["alias", "group", "page", "screen"]
    [link] = await rows(runtime, IdentityLink)
    assert link.anonymous_id == "v1"


async def test_a_call_with_only_an_anonymous_id_is_stored_without_a_customer(client, runtime):
    response = await client.post(
        "/v1/track", json={"anonymousId": "v9", "event": "Product Viewed", "context": {"page": {"path": "/p/1"}}}
    )
    assert response.status_code == 200, response.text
    [event] = await rows(runtime, Event)
    assert (event.customer_id, event.anonymous_id, event.context) == (None, "v9", {"page": {"path": "/p/1"}})
    assert await count(runtime, Customer) == 0


async def test_identify_with_both_ids_links_them_and_the_first_link_stands(client, runtime):
    await client.post(
        "/v1/identify", json={"userId": "ann", "anonymousId": "v1", "traits": {"email": "ann@example.com"}}
    )
    await client.post("/v1/identify", json={"userId": "bob", "anonymousId": "v1"})
    [link] = await rows(runtime, IdentityLink)
    ann = next(c for c in await rows(runtime, Customer) if c.user_id == "ann")
    assert (link.anonymous_id, link.customer_id) == ("v1", ann.id)


async def test_a_call_with_neither_id_names_user_id(client):
    response = await client.post("/v1/page", json={"name": "Home"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "userId"]
    assert "anonymousId" in response.json()["detail"][0]["msg"]


async def test_a_consent_trait_is_a_boolean_or_true_or_false(client, runtime):
    for unclear in ("maybe", 1, "yes", ""):
        response = await client.post("/v1/identify", json={"userId": "ann", "traits": {"sms_opt_in": unclear}})
        assert response.status_code == 422, unclear
        assert response.json()["detail"][0]["loc"] == ["body", "traits", "sms_opt_in"]
    assert await count(runtime, Consent) == 0
    assert (
        await client.post("/v1/identify", json={"userId": "ann", "traits": {"sms_opt_in": "True"}})
    ).status_code == 200
    assert (
        await client.post("/v1/identify", json={"userId": "ann", "traits": {"email_opt_out": False}})
    ).status_code == 200
    consents = {(c.channel, c.status) for c in await rows(runtime, Consent)}
    assert ("sms", "opted_in") in consents
    [ann] = await rows(runtime, Customer)
    assert ann.traits["sms_opt_in"] is True


async def test_one_unknown_field_never_refuses_a_batch_of_mixed_calls(client, runtime):
    batch = [
        {"type": "identify", "userId": "ann", "traits": {"plan": "pro"}},
        {"type": "page", "anonymousId": "v1", "name": "Pricing", "someNewField": {"a": 1}},
        {"type": "screen", "userId": "ann", "name": "Home"},
        {"type": "group", "userId": "ann", "groupId": "acme"},
        {"type": "alias", "userId": "ann", "previousId": "v1"},
        {"type": "track", "userId": "ann", "event": "Upgraded"},
    ]
    response = await client.post("/v1/batch", json={"batch": batch, "sentAt": "2026-03-02T09:00:00Z"})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 6


async def test_a_key_presented_as_basic_user_name_is_checked_like_a_bearer_key(client, runtime):
    key = await make_key(runtime, "ingest")
    track = {"userId": "ann", "event": "Signed Up"}
    assert (await client.post("/v1/track", json=track, headers=basic(key))).status_code == 200
    assert (await client.post("/v1/track", json=track, headers=basic("", key))).status_code == 200
    assert (await client.post("/v1/track", json=track, headers=basic("wrong"))).status_code == 401
    assert (
        await client.post("/v1/track", json=track, headers={"Authorization": "Basic !!not-base64"})
    ).status_code == 401
    assert (await client.get("/v1/messages", headers=basic(key))).status_code == 403  # the ingest role reads nothing
    assert await count(runtime, Event) == 2


async def test_page_views_appear_on_the_customer_timeline(client):
    await client.post(
        "/v1/page", json={"userId": "ann", "name": "Pricing", "properties": {"url": "https://x.example/"}}
    )
    response = await client.get("/v1/customers/ann/timeline")
    assert response.status_code == 200, response.text
    [entry] = [e for e in response.json()["items"] if e["kind"] == "page"]
    assert entry["summary"].startswith("viewed page 'Pricing'")
