"""`/v1/broadcasts`: drafts from the file's own schema, the lifecycle with 409s naming the
state, the preview, and KPIs per broadcast exactly as per journey (conversions, lift)."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from orchestrator.broadcasts.sending import advance_broadcasts
from orchestrator.delivery.conversions import in_holdout
from orchestrator.delivery.statuses import record_status
from orchestrator.events.ingest import ingest
from orchestrator.events.schemas import IdentifyCall
from orchestrator.storage.models import Message
from tests.broadcasts.helpers import add_customers, body
from tests.conftest import refresh_kpis_as_the_worker_does


async def post(client, path: str, json=None, expected: int = 200) -> dict:
    response = await client.post(path, json=json)
    assert response.status_code == expected, response.text
    return response.json()


async def test_illegal_moves_are_refused_with_409_naming_the_state(client):
    await post(client, "/v1/broadcasts", body("sale"), expected=201)
    refused = await post(client, "/v1/broadcasts/sale/pause", expected=409)
    assert "it is draft" in refused["detail"] and "scheduled or sending" in refused["detail"]
    assert (await post(client, "/v1/broadcasts/sale/schedule"))["state"] == "scheduled"
    assert "it is scheduled" in (await post(client, "/v1/broadcasts/sale/schedule", expected=409))["detail"]
    assert (await post(client, "/v1/broadcasts/sale/pause"))["state"] == "paused"
    assert (await post(client, "/v1/broadcasts/sale/resume"))["state"] == "scheduled"  # no snapshot yet
    assert (await post(client, "/v1/broadcasts/sale/cancel"))["state"] == "cancelled"
    assert "it is cancelled" in (await post(client, "/v1/broadcasts/sale/resume", expected=409))["detail"]
    await post(client, "/v1/broadcasts/nothing/schedule", expected=404)


async def test_a_body_is_checked_like_a_file_and_only_a_draft_changes(client):
    bad = await client.post("/v1/broadcasts", json=body("sale", schedule={"local_time": "25:00", "date": "2026-11-27"}))
    assert bad.status_code == 422 and "local_time" in bad.text
    await post(client, "/v1/broadcasts", body("sale"), expected=201)
    await post(client, "/v1/broadcasts", body("sale", priority=5), expected=200)
    await post(client, "/v1/broadcasts/sale/schedule")
    assert "only a draft" in (await post(client, "/v1/broadcasts", body("sale", priority=7), expected=409))["detail"]
    listed = (await client.get("/v1/broadcasts")).json()
    assert {(b["id"], b["state"], b["priority"]) for b in listed} >= {("sale", "scheduled", 5)}


async def test_preview_counts_the_held_out_and_those_without_consent_or_address(client, runtime):
    users = await add_customers(runtime, 40)
    async with runtime.sessions() as session, session.begin():
        await ingest(
            session,
            runtime,
            [
                IdentifyCall(userId="no-consent", traits={"phone": "+33612349999"}),
                IdentifyCall(userId="no-phone", traits={}),
            ],
        )
    everyone = [*users, "no-consent", "no-phone"]
    await post(client, "/v1/broadcasts", body("sale", everyone, holdout=0.25), expected=201)
    preview = (await client.get("/v1/broadcasts/sale/preview")).json()
    held = {u for u in everyone if in_holdout("broadcast:sale", u, 25)}
    assert preview["audience"] == 42 and len(preview["sample"]) == 10
    assert preview["held_out"] == len(held) > 0
    assert preview["no_consent"] == ("no-consent" not in held)
    assert preview["no_address"] == ("no-phone" not in held)
    assert preview["would_send"] == preview["channels"]["sms"] == len(set(users) - held)


async def test_kpis_per_broadcast_count_sends_conversions_and_the_holdout_like_a_journey(client, runtime, drain):
    users = await add_customers(runtime, 60)
    await post(
        client,
        "/v1/broadcasts",
        body("sale", users, holdout=0.2, goal={"event": "Order Completed", "within": "3d"}),
        expected=201,
    )
    await post(client, "/v1/broadcasts/sale/schedule")
    await advance_broadcasts(runtime)
    await drain()
    async with runtime.sessions() as session, session.begin():
        sent = (
            await session.exec(select(Message).where(Message.journey_id == "broadcast:sale", Message.status == "sent"))
        ).all()
        for message in sent:
            await record_status(session, message, source="test", status="delivered", now=runtime.clock.now())
    runtime.clock.advance(timedelta(hours=1))
    for n, user_id in enumerate(users[:10]):
        response = await client.post(
            "/v1/track",
            json={"userId": user_id, "event": "Order Completed", "properties": {"order_id": f"O-{n}", "revenue": 50}},
        )
        assert response.status_code == 200
    await refresh_kpis_as_the_worker_does(client)
    detail = (await client.get("/v1/broadcasts/sale")).json()
    kpis = (await client.get("/v1/kpis", params={"broadcast": "sale"})).json()
    [row] = kpis["rows"]
    assert detail["kpis"] == row
    held = detail["lift"]["holdout"]["enrollments"]
    assert 0 < held < 60 and detail["lift"]["treatment"]["enrollments"] == 60 - held
    assert row["messages"] == 60 and row["skipped_by_reason"] == {"holdout group": held}
    assert row["sent"] == row["delivered"] == 60 - held
    converted = detail["lift"]["treatment"]["converted"] + detail["lift"]["holdout"]["converted"]
    assert converted == 10
    assert row["conversions"] == detail["lift"]["treatment"]["converted"]
    assert row["revenue"] == 50.0 * row["conversions"]
    assert kpis["lift"] == detail["lift"]
