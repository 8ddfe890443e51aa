"""Segment ingestion through HTTP: idempotency, validation, all-or-nothing batches."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlmodel import func, select

from orchestrator.storage.models import Customer, Event, Message


async def count(runtime, model) -> int:
    async with runtime.sessions() as session:
        return (await session.exec(select(func.count()).select_from(model))).one()


async def test_identify_stores_normalized_traits(client):
    response = await client.post(
        "/v1/identify",
        json={
            "userId": "ann",
            "traits": {
                "email": "ann@Example.COM",
                "phone": "+1 (415) 555-0123",
                "locale": "zh_hant_tw",
                "timezone": "Asia/Taipei",
                "plan": "pro",
            },
        },
    )
    assert response.status_code == 200, response.text
    customer = (await client.get("/v1/customers/ann")).json()
    assert customer["email"] == "ann@example.com"
    assert customer["phone"] == "+14155550123"
    assert customer["locale"] == "zh-Hant-TW"
    assert customer["timezone"] == "Asia/Taipei"
    assert customer["traits"]["plan"] == "pro"


async def test_identify_merges_traits(client):
    await client.post("/v1/identify", json={"userId": "ann", "traits": {"plan": "free", "first_name": "Ann"}})
    await client.post("/v1/identify", json={"userId": "ann", "traits": {"plan": "pro"}})
    traits = (await client.get("/v1/customers/ann")).json()["traits"]
    assert traits == {"plan": "pro", "first_name": "Ann"}


async def test_same_message_id_twice_has_one_effect(client, runtime):
    event = {"userId": "ann", "event": "Product Viewed", "messageId": "msg-1"}
    first = (await client.post("/v1/track", json=event)).json()
    second = (await client.post("/v1/track", json=event)).json()
    assert first["results"] == [{"messageId": "msg-1", "duplicate": False}]
    assert second["results"] == [{"messageId": "msg-1", "duplicate": True}]
    assert (second["accepted"], second["duplicates"]) == (0, 1)
    assert await count(runtime, Event) == 1


async def test_concurrent_single_calls_commit_together_with_one_effect_each(client, runtime):
    """Single calls share transactions (group commit); every answer still tells the truth."""
    calls = [
        ("/v1/track", {"userId": f"u{i % 7}", "event": "Product Viewed", "messageId": f"m{i % 40}"}) for i in range(120)
    ]  # each messageId sent three times, at the same moment
    calls += [("/v1/identify", {"userId": f"u{i}", "traits": {"plan": "pro"}, "messageId": f"id{i}"}) for i in range(7)]
    responses = await asyncio.gather(*(client.post(path, json=body) for path, body in calls))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    first_times = [r.json()["results"][0]["messageId"] for r in responses if not r.json()["results"][0]["duplicate"]]
    assert sorted(first_times) == sorted([f"m{i}" for i in range(40)] + [f"id{i}" for i in range(7)])
    assert await count(runtime, Event) == 47
    assert await count(runtime, Customer) == 7
    assert (await client.get("/v1/customers/u3")).json()["traits"] == {"plan": "pro"}


async def backends_waiting_on_a_lock(runtime) -> int:
    async with runtime.sessions() as session:  # a fresh transaction: pg_stat_activity is snapshotted per transaction
        return (
            await session.exec(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        ).one()[0]


async def test_only_events_a_journey_reacts_to_wait_for_the_customer_lock(client, runtime):
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's (SQLite locks the whole database)")
    await client.post("/v1/identify", json={"userId": "ann", "traits": {}})
    async with runtime.sessions() as holder, holder.begin():
        # The lock a concurrent request reacting to one of ann's events holds.
        await holder.exec(select(Customer).where(Customer.user_id == "ann").with_for_update(key_share=True))
        viewed = await asyncio.wait_for(client.post("/v1/track", json={"userId": "ann", "event": "Product Viewed"}), 30)
        assert viewed.status_code == 200  # no journey reacts to it: stored without the lock
        abandoned = asyncio.create_task(client.post("/v1/track", json={"userId": "ann", "event": "Cart Abandoned"}))
        for _ in range(600):
            if await backends_waiting_on_a_lock(runtime) or abandoned.done():
                break
            await asyncio.sleep(0.05)
        assert await backends_waiting_on_a_lock(runtime) == 1 and not abandoned.done()
    assert (await abandoned).status_code == 200  # a trigger event waits for the lock, then enrolls
    enrollments = (await client.get("/v1/customers/ann")).json()["enrollments"]
    assert [e["journey_id"] for e in enrollments] == ["abandoned-cart"]


async def test_replayed_batch_changes_nothing(client, runtime, drain):
    batch = {
        "batch": [
            {"type": "identify", "userId": "bo", "messageId": "b1", "traits": {"email": "bo@example.com"}},
            {"type": "track", "userId": "bo", "messageId": "b2", "event": "Signed Up"},
            {"type": "track", "userId": "cy", "messageId": "b3", "event": "Signed Up"},
        ]
    }
    assert (await client.post("/v1/batch", json=batch)).json()["accepted"] == 3
    await drain()
    messages_before = (await client.get("/v1/messages")).json()["total"]
    replay = (await client.post("/v1/batch", json=batch)).json()
    await drain()
    assert (replay["accepted"], replay["duplicates"]) == (0, 3)
    assert await count(runtime, Event) == 3
    assert (await client.get("/v1/messages")).json()["total"] == messages_before == 2


def _error_locations(response) -> list[list]:
    assert response.status_code == 422, response.text
    return [error["loc"] for error in response.json()["detail"]]


async def test_missing_user_id_names_the_field(client):
    assert ["body", "userId"] in _error_locations(await client.post("/v1/track", json={"event": "X"}))


async def test_bad_timestamp_names_the_field(client):
    response = await client.post("/v1/track", json={"userId": "a", "event": "X", "timestamp": "last tuesday"})
    assert ["body", "timestamp"] in _error_locations(response)


async def test_invalid_email_and_phone_name_their_fields(client):
    response = await client.post(
        "/v1/identify", json={"userId": "a", "traits": {"email": "not-an-email", "phone": "12"}}
    )
    locations = _error_locations(response)
    assert ["body", "traits", "email"] in locations
    assert ["body", "traits", "phone"] in locations


async def test_unknown_type_in_batch_names_the_item(client):
    response = await client.post(
        "/v1/batch",
        json={"batch": [{"type": "track", "userId": "a", "event": "X"}, {"type": "pageview", "userId": "a"}]},
    )
    assert ["body", "batch", 1] in _error_locations(response)
    assert "type" in response.json()["detail"][0]["msg"]


async def test_oversized_batch_is_rejected(client, runtime):
    limit = runtime.settings.max_batch_events
    items = [{"type": "track", "userId": "a", "event": "X"}] * (limit + 1)
    assert ["body", "batch"] in _error_locations(await client.post("/v1/batch", json={"batch": items}))


async def test_one_bad_item_writes_nothing(client, runtime):
    response = await client.post(
        "/v1/batch",
        json={
            "batch": [
                {"type": "identify", "userId": "good", "traits": {"email": "good@example.com"}},
                {"type": "track", "userId": "good", "event": "Signed Up"},
                {"type": "track", "userId": "bad", "event": "Signed Up", "timestamp": "nope"},
            ]
        },
    )
    assert ["body", "batch", 2, "track", "timestamp"] in _error_locations(response)
    assert await count(runtime, Event) == 0
    assert await count(runtime, Customer) == 0


async def test_segment_extras_are_accepted(client):
    response = await client.post(
        "/v1/track",
        json={
            "userId": "a",
            "event": "X",
            "anonymousId": "anon",
            "integrations": {"All": True},
            "context": {"ip": "1.2.3.4"},
            "sentAt": "2026-03-02T09:00:00Z",
            "timestamp": "2026-03-02T09:00:00+01:00",
        },
    )
    assert response.status_code == 200, response.text


async def test_messages_are_filtered_and_paginated(client, drain):
    for i in range(5):
        await client.post("/v1/identify", json={"userId": f"u{i}", "traits": {"email": f"u{i}@example.com"}})
        await client.post("/v1/track", json={"userId": f"u{i}", "event": "Signed Up"})
    await drain()
    page = (await client.get("/v1/messages", params={"journey": "welcome", "limit": 2, "offset": 2})).json()
    assert page["total"] == 5 and len(page["items"]) == 2
    assert [m["to_address"] for m in page["items"]] == ["u2@example.com", "u3@example.com"]
    only_u4 = (await client.get("/v1/messages", params={"customer": "u4"})).json()
    assert [m["to_address"] for m in only_u4["items"]] == ["u4@example.com"]
    assert (await client.get("/v1/messages", params={"channel": "sms"})).json()["total"] == 0
    assert (await client.get("/v1/messages", params={"status": "sent"})).json()["total"] == 5


async def test_a_person_can_retry_an_unknown_message(client, runtime, drain):
    await client.post("/v1/identify", json={"userId": "u", "traits": {"email": "u@example.com"}})
    await client.post("/v1/track", json={"userId": "u", "event": "Signed Up"})
    await drain()
    [message] = (await client.get("/v1/messages")).json()["items"]
    assert (await client.post(f"/v1/messages/{message['id']}/retry")).status_code == 409  # it was sent
    async with runtime.sessions() as session, session.begin():
        row = await session.get(Message, message["id"])
        row.status = "unknown"
    retried = (await client.post(f"/v1/messages/{message['id']}/retry")).json()
    assert retried["status"] == "queued"
    await drain()
    assert (await client.get("/v1/messages")).json()["items"][0]["status"] == "sent"
    assert len(runtime.channels.for_channel("email").outbox) == 2
    assert (await client.post("/v1/messages/999999/retry")).status_code == 404
