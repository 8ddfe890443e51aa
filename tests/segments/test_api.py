"""GET /v1/segments, /v1/segments/{id} (size history, recent changes) and /preview."""

from __future__ import annotations

from datetime import timedelta

from orchestrator.segments.refresh import refresh_segments
from tests.conftest import START

REPEAT = "repeat-buyers-90d"


async def two_orders(client, user_id: str) -> None:
    for days_ago, order_id in ((20, f"{user_id}-1"), (2, f"{user_id}-2")):
        response = await client.post(
            "/v1/track",
            json={
                "userId": user_id,
                "event": "Order Completed",
                "properties": {"order_id": order_id, "revenue": 30},
                "timestamp": (START - timedelta(days=days_ago)).isoformat(),
            },
        )
        assert response.status_code == 200, response.text


async def test_list_detail_and_preview(client, runtime):
    await refresh_segments(runtime)  # first sweep: empty
    await two_orders(client, "ann")
    await two_orders(client, "bob")
    await client.post("/v1/identify", json={"userId": "bob", "traits": {"email": "bob@example.com"}})
    await refresh_segments(runtime, sweep=True)

    listing = (await client.get("/v1/segments")).json()
    assert listing["errors"] == []
    by_id = {s["id"]: s for s in listing["segments"]}
    assert by_id[REPEAT]["members"] == 2 and by_id["lapsed-customers"]["members"] == 0
    assert by_id["french-opted-in-buyers-this-year"]["name"] == "French SMS buyers this year"

    detail = (await client.get(f"/v1/segments/{REPEAT}")).json()
    assert [s["members"] for s in detail["size_history"]] == [0, 2]
    assert detail["where"] == {"event": {"name": "Order Completed", "within": "12w6d", "count": {"at_least": 2.0}}}
    assert sorted((c["user_id"], c["change"]) for c in detail["recent_changes"]) == [
        ("ann", "entered"),
        ("bob", "entered"),
    ]

    preview = (await client.get(f"/v1/segments/{REPEAT}/preview", params={"limit": 1})).json()
    assert preview["count"] == 2
    assert [c["user_id"] for c in preview["sample"]] == ["ann"]
    sample = (await client.get(f"/v1/segments/{REPEAT}/preview")).json()["sample"]
    assert sample[1] == {"user_id": "bob", "email": "bob@example.com", "phone": None, "locale": None, "timezone": None}


async def test_unknown_segment_and_bad_limit_are_4xx(client):
    response = await client.get("/v1/segments/no-such-segment")
    assert response.status_code == 404 and "no segment 'no-such-segment'" in response.text
    assert (await client.get("/v1/segments/no-such-segment/preview")).status_code == 404
    response = await client.get(f"/v1/segments/{REPEAT}/preview", params={"limit": 100000})
    assert response.status_code == 422 and "limit" in response.text
