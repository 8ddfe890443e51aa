"""Conversions and lift through the real engine: events over HTTP, simulated time, delivery
receipts through `record_status`, and what `GET /v1/kpis` and the journey stats make of it.

Journeys here: the launch `abandoned-cart` (SMS an hour after the cart, goal: an order
within 72 h), `browse` (an e-mail right away, goal: an order within 7 days) and `promo`
(an e-mail to half of the entrants, the other half held out, goal: an order within 3 days).
"""

from __future__ import annotations

import shutil

import pytest
from sqlmodel import col, select

from orchestrator.clock import SimulatedClock
from orchestrator.config import PROJECT_ROOT
from orchestrator.delivery.conversions import in_holdout
from orchestrator.delivery.statuses import record_status
from orchestrator.startup import build_runtime
from orchestrator.storage.feedback_models import Conversion
from orchestrator.storage.models import Customer, Message
from tests.api.test_launch_journeys import DAY, HOUR, advance, identify, track
from tests.conftest import START, _reset, make_settings, refresh_kpis_as_the_worker_does

BROWSE = """\
id: browse
trigger: {event: Product Viewed}
goal: {event: Order Completed, within: 7d}
steps:
  - id: browse-email
    send: {channel: email, template: welcome-email}
"""
PROMO = """\
id: promo
trigger: {event: Promo Eligible}
holdout: 50
goal: {event: Order Completed, within: 3d}
steps:
  - id: promo-email
    send: {channel: email, template: welcome-email}
"""


@pytest.fixture
async def runtime(database_url, tmp_path):
    folder = tmp_path / "journeys"
    folder.mkdir()
    shutil.copy(PROJECT_ROOT / "journeys" / "abandoned-cart.yaml", folder)
    (folder / "browse.yaml").write_text(BROWSE)
    (folder / "promo.yaml").write_text(PROMO)
    await _reset(database_url)
    runtime = await build_runtime(make_settings(database_url, journeys_dir=folder), clock=SimulatedClock(START))
    yield runtime
    await runtime.aclose()


async def deliver(runtime, user_id: str, step_id: str) -> None:
    """The provider's delivery receipt for the customer's message of that step, now."""
    async with runtime.sessions() as session, session.begin():
        message = (
            await session.exec(
                select(Message)
                .join(Customer, col(Customer.id) == col(Message.customer_id))
                .where(Customer.user_id == user_id, Message.step_id == step_id)
            )
        ).one()
        await record_status(session, message, source="test", status="delivered", now=runtime.clock.now())


async def order(client, user_id: str, order_id: str, revenue: float, message_id: str | None = None) -> None:
    body = {"userId": user_id, "event": "Order Completed", "properties": {"order_id": order_id, "revenue": revenue}}
    response = await client.post("/v1/track", json={**body, **({"messageId": message_id} if message_id else {})})
    assert response.status_code == 200, response.text


async def conversions(runtime) -> list[tuple[str, str, str, float]]:
    async with runtime.sessions() as session:
        rows = (await session.exec(select(Conversion).order_by(col(Conversion.id)))).all()
    return [(c.order_key, c.journey_id, c.step_id, float(c.revenue)) for c in rows]


async def kpis(client, **params) -> dict:
    await refresh_kpis_as_the_worker_does(client)
    response = await client.get("/v1/kpis", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def stats(client, journey: str) -> dict:
    response = await client.get(f"/v1/journeys/{journey}/stats")
    assert response.status_code == 200, response.text
    return response.json()


async def cart_sms_delivered(client, runtime, drain, user_id: str) -> None:
    await identify(client, user_id, phone="+14155550100", email=f"{user_id}@example.com", sms_opt_in=True)
    await track(client, user_id, "Cart Abandoned")
    await drain()
    await advance(client, HOUR)
    await deliver(runtime, user_id, "discount-sms")


async def test_an_order_before_the_first_message_is_no_conversion(client, runtime, drain):
    await identify(client, "olga", phone="+14155550101", sms_opt_in=True)
    await track(client, "olga", "Cart Abandoned")
    await drain()
    await advance(client, 20 * 60)
    await order(client, "olga", "A-1", 80)
    await advance(client, HOUR)
    assert await conversions(runtime) == []
    [row] = (await kpis(client, journey="abandoned-cart"))["rows"]
    assert (row["messages"], row["conversions"], row["revenue"]) == (0, 0, 0.0)
    journey = await stats(client, "abandoned-cart")
    assert (journey["entered"], journey["goal_reached"], journey["conversions"]) == (1, 1, 0)  # the goal, not ours


async def test_an_order_after_a_sent_but_undelivered_message_is_no_conversion(client, runtime, drain):
    await identify(client, "sven", phone="+14155550102", sms_opt_in=True)
    await track(client, "sven", "Cart Abandoned")
    await drain()
    await advance(client, HOUR)  # the SMS is sent, no receipt yet
    await order(client, "sven", "S-1", 30)
    assert await conversions(runtime) == []
    [row] = (await kpis(client, journey="abandoned-cart"))["rows"]
    assert (row["sent"], row["delivered"], row["conversions"], row["conversion_rate"]) == (1, 0, 0, 0.0)


async def test_an_order_after_the_goal_window_is_no_conversion(client, runtime, drain):
    await cart_sms_delivered(client, runtime, drain, "late")
    await advance(client, 71 * HOUR + 60)  # 72 h and a minute after entry
    await order(client, "late", "L-1", 80)
    assert await conversions(runtime) == []
    [row] = (await kpis(client, journey="abandoned-cart"))["rows"]
    assert (row["delivered"], row["conversions"], row["conversion_rate"]) == (1, 0, 0.0)
    assert (await stats(client, "abandoned-cart"))["goal_reached"] == 0


async def test_two_journeys_one_order_goes_to_the_last_delivered_message(client, runtime, drain):
    await cart_sms_delivered(client, runtime, drain, "ann")  # cart SMS delivered at +1h
    await advance(client, HOUR)
    await track(client, "ann", "Product Viewed")
    await drain()
    await deliver(runtime, "ann", "browse-email")  # browse e-mail delivered at +2h: the last touch
    await advance(client, 3 * HOUR)
    await order(client, "ann", "A-7", 80, message_id="order-a7")
    await order(client, "ann", "A-7", 80, message_id="order-a7-again")  # the same order, a new messageId
    assert await conversions(runtime) == [("A-7", "browse", "browse-email", 80.0)]
    by_journey = {r["journey"]: r for r in (await kpis(client, group_by="journey"))["rows"]}
    assert (by_journey["browse"]["conversions"], by_journey["browse"]["revenue"]) == (1, 80.0)
    assert (by_journey["abandoned-cart"]["conversions"], by_journey["abandoned-cart"]["revenue"]) == (0, 0.0)
    [total] = (await kpis(client))["rows"]
    # Recipients are distinct per step and day: ann counts once for each journey's step.
    assert (total["recipients"], total["conversions"], total["conversion_rate"], total["revenue"]) == (2, 1, 50.0, 80.0)
    # Both journeys reached their goal; only one earned the order.
    assert (await stats(client, "abandoned-cart"))["goal_reached"] == 1
    assert (await stats(client, "browse"))["goal_reached"] == 1


async def test_a_later_message_that_never_arrived_earns_nothing(client, runtime, drain):
    await cart_sms_delivered(client, runtime, drain, "bo")
    await advance(client, HOUR)
    await track(client, "bo", "Product Viewed")  # e-mail sent, never delivered
    await drain()
    await advance(client, HOUR)
    await order(client, "bo", "B-1", 25)
    assert await conversions(runtime) == [("B-1", "abandoned-cart", "discount-sms", 25.0)]


TREATED, HELD_OUT = ["p1", "p2", "p6"], ["p0", "p3"]


async def test_holdout_orders_count_for_lift_but_earn_no_credit(client, runtime, drain):
    assert not any(in_holdout("promo", u, 50) for u in TREATED) and all(in_holdout("promo", u, 50) for u in HELD_OUT)
    for user in TREATED + HELD_OUT:
        await identify(client, user, email=f"{user}@example.com")
        await track(client, user, "Promo Eligible")
    await drain()
    for user in TREATED:
        await deliver(runtime, user, "promo-email")
    await advance(client, DAY)
    for user in ("p1", "p2", "p0"):  # two treated customers and one held out order
        await order(client, user, f"order-{user}", 40)
    assert await conversions(runtime) == [
        ("order-p1", "promo", "promo-email", 40.0),
        ("order-p2", "promo", "promo-email", 40.0),
    ]
    report = await kpis(client, journey="promo")
    [row] = report["rows"]
    assert (row["messages"], row["sent"], row["delivered"], row["skipped"]) == (5, 3, 3, 2)
    assert row["skipped_by_reason"] == {"holdout group": 2}
    assert (row["recipients"], row["conversions"], row["conversion_rate"], row["revenue"]) == (3, 2, 66.67, 80.0)
    expected_lift = {
        "journey": "promo",
        "treatment": {"enrollments": 3, "converted": 2, "conversion_rate": 66.67},
        "holdout": {"enrollments": 2, "converted": 1, "conversion_rate": 50.0},
        "lift": 16.67,
        "relative_lift": 33.33,
        "ci_low": -55.15,
        "ci_high": 75.15,
        "significant": False,
    }
    assert report["lift"] == expected_lift
    for period in (
        {"from": "2026-03-02T00:00:00Z", "to": "2026-03-03T00:00:00Z"},  # whole days: the rollup
        {"from": "2026-03-02T08:00:00Z", "to": "2026-03-04T09:30:00Z"},
    ):  # ends counted live
        assert (await kpis(client, journey="promo", **period))["lift"] == expected_lift
    assert (await kpis(client, journey="promo", **{"from": "2026-03-03T00:00:00Z"}))["lift"]["treatment"] == {
        "enrollments": 0,
        "converted": 0,
        "conversion_rate": None,
    }
    journey = await stats(client, "promo")
    assert journey["lift"] == expected_lift
    assert (journey["entered"], journey["goal_reached"], journey["conversions"], journey["revenue"]) == (5, 3, 2, 80.0)
    [step] = journey["steps"]
    assert {
        k: step[k]
        for k in (
            "id",
            "kind",
            "reached",
            "messages",
            "sent",
            "delivered",
            "delivery_rate",
            "skipped",
            "skipped_by_reason",
            "conversions",
            "revenue",
        )
    } == dict(
        id="promo-email",
        kind="send",
        reached=5,
        messages=5,
        sent=3,
        delivered=3,
        delivery_rate=100.0,
        skipped=2,
        skipped_by_reason={"holdout group": 2},
        conversions=2,
        revenue=80.0,
    )
    assert journey["exits"] == [{"status": "completed", "reason": None, "count": 5}]
