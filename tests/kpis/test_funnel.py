"""The abandoned-cart funnel step by step, through the engine, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.api.test_launch_journeys import HOUR, advance, identify, track
from tests.conftest import refresh_kpis_as_the_worker_does
from tests.kpis.test_attribution import deliver, order


async def test_abandoned_cart_funnel(client, runtime, drain):
    await identify(client, "u1", phone="+14155550101", sms_opt_in=True)  # texted, converts
    await identify(client, "u2", phone="+14155550102")  # no opt-in: skipped
    await identify(client, "u3", phone="+14155550103", sms_opt_in=True)  # orders before the reminder
    for user in ("u1", "u2", "u3"):
        await track(client, user, "Cart Abandoned")
    await drain()
    await advance(client, 20 * 60)
    await order(client, "u3", "U3-1", 35)
    await advance(client, 40 * 60)
    await deliver(runtime, "u1", "discount-sms")
    await order(client, "u1", "U1-1", 80)
    await identify(client, "u4", phone="+14155550104", sms_opt_in=True)  # still waiting out the hour
    await track(client, "u4", "Cart Abandoned")
    await drain()
    await refresh_kpis_as_the_worker_does(client)  # the funnel reads the rollups, as fresh as the worker keeps them

    response = await client.get("/v1/journeys/abandoned-cart/stats")
    assert response.status_code == 200, response.text
    stats = response.json()
    assert (stats["entered"], stats["active"], stats["goal_reached"], stats["conversions"], stats["revenue"]) == (
        4,
        1,
        2,
        1,
        80.0,
    )
    steps = [{k: v for k, v in step.items() if v is not None} for step in stats["steps"]]
    assert steps == [
        {"id": "wait-an-hour", "kind": "wait", "reached": 4, "waiting": 0},
        {"id": "already-ordered", "kind": "if", "waiting": 1},
        {"id": "2.then.1", "kind": "exit", "branch": "already-ordered: then", "reached": 1, "waiting": 0, "exited": 1},
        {
            "id": "discount-sms",
            "kind": "send",
            "reached": 2,
            "waiting": 0,
            "channel": "sms",
            "template": "abandoned-cart-sms",
            "messages": 2,
            "sent": 1,
            "delivered": 1,
            "delivery_rate": 100.0,
            "failed": 0,
            "skipped": 1,
            "skipped_by_reason": {"no sms opt-in": 1},
            "capped": 0,
            "conversions": 1,
            "revenue": 80.0,
        },
    ]
    assert stats["exits"] == [
        {"status": "completed", "reason": None, "count": 2},
        {"status": "exited", "reason": "ordered before the reminder", "count": 1},
    ]
    assert stats["lift"]["holdout"] == {"enrollments": 0, "converted": 0, "conversion_rate": None}
    assert stats["lift"]["treatment"] == {"enrollments": 4, "converted": 2, "conversion_rate": 50.0}
    assert stats["lift"]["lift"] is None and stats["lift"]["ci_low"] is None


async def test_entry_time_range(client, runtime, drain):
    await identify(client, "u1", phone="+14155550101", sms_opt_in=True)
    await track(client, "u1", "Cart Abandoned")
    await advance(client, 2 * HOUR)
    later = runtime.clock.now().isoformat()
    await identify(client, "u2", phone="+14155550102", sms_opt_in=True)
    await track(client, "u2", "Cart Abandoned")
    await advance(client, 2 * HOUR)
    await refresh_kpis_as_the_worker_does(client)
    stats = (await client.get("/v1/journeys/abandoned-cart/stats", params={"from": later})).json()
    assert stats["entered"] == 1 and stats["steps"][-1]["sent"] == 1
    stats = (await client.get("/v1/journeys/abandoned-cart/stats", params={"to": later})).json()
    assert stats["entered"] == 1 and stats["steps"][-1]["sent"] == 1


async def test_unknown_journey(client):
    assert (await client.get("/v1/journeys/no-such-journey/stats")).status_code == 404
