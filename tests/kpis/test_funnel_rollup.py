"""The funnel read from its rollups equals the funnel counted live, on hand-built rows,
before and after messages change status, enrollments end and an order is credited.

`GET /v1/journeys/{id}/stats` without a range reads whole days from the rollups only; a
range whose ends are not midnights and that holds no whole day is counted live, from
enrollments, messages and conversions; a range with whole days inside mixes both.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa

from orchestrator.storage.feedback_models import Conversion
from orchestrator.storage.models import Customer, Enrollment, Message
from tests.conftest import START, refresh_kpis_as_the_worker_does

JOURNEY, SEND, EXIT_REASON = "abandoned-cart", "discount-sms", "ordered before the reminder"
DAY = timedelta(days=1)
messages, enrollments = Message.__table__, Enrollment.__table__
# No whole day inside: counted live. START is 17:00 UTC; the second day's entrant came at 17:00 too.
LIVE = {"from": (START - timedelta(minutes=1)).isoformat(), "to": (START + DAY + timedelta(minutes=10)).isoformat()}
# The second day whole (rollup), the parts of the first and third days live.
MIXED = {"from": LIVE["from"], "to": (START + 2 * DAY + timedelta(minutes=1)).isoformat()}


async def build(runtime) -> dict[str, int]:
    """Five entrants, four on the first day (one in the holdout group) and one on the next,
    and the discount SMS of each, as the engine leaves them right after the send step."""
    ids = {}
    async with runtime.sessions() as session, session.begin():
        for i, (entered, holdout, status, reason, sent) in enumerate(
            [
                (START, False, "sent", None, True),
                (START + timedelta(minutes=1), False, "failed", "30003", False),
                (START + timedelta(minutes=2), False, "queued", None, False),
                (START + timedelta(minutes=3), True, "skipped", "holdout group", False),
                (START + DAY, False, "skipped", "no sms opt-in", False),
            ]
        ):
            person = Customer(user_id=f"u{i}", created_at=START, updated_at=START)
            session.add(person)
            await session.flush()
            enrollment = Enrollment(
                journey_id=JOURNEY,
                journey_version="v1",
                customer_id=person.id,
                cursor="already-ordered",
                entered_at=entered,
                holdout=holdout,
            )
            session.add(enrollment)
            await session.flush()
            message = Message(
                send_key=f"{enrollment.id}:{SEND}",
                enrollment_id=enrollment.id,
                customer_id=person.id,
                journey_id=JOURNEY,
                journey_version="v1",
                step_id=SEND,
                channel="sms",
                template="abandoned-cart-sms",
                status=status,
                status_reason=reason,
                created_at=entered + timedelta(hours=1),
                sent_at=entered + timedelta(hours=1) if sent else None,
                updated_at=entered + timedelta(hours=1),
            )
            session.add(message)
            await session.flush()
            ids[f"e{i}"], ids[f"m{i}"], ids[f"c{i}"] = enrollment.id, message.id, person.id
    return ids


async def stats(client, params=None) -> dict:
    response = await client.get(f"/v1/journeys/{JOURNEY}/stats", params=params or {})
    assert response.status_code == 200, response.text
    return {k: v for k, v in response.json().items() if k not in ("since", "until")}


def send_step(figures: dict) -> dict:
    return next(step for step in figures["steps"] if step["id"] == SEND)


async def assert_rollup_equals_live(client) -> dict:
    await refresh_kpis_as_the_worker_does(client)
    from_rollup, live, mixed = await stats(client), await stats(client, LIVE), await stats(client, MIXED)
    assert from_rollup == live == mixed
    return from_rollup


async def test_rollup_equals_live_count_through_status_changes(client, runtime):
    runtime.clock.set(START + DAY + timedelta(hours=2))
    ids = await build(runtime)
    first = await assert_rollup_equals_live(client)
    assert (first["entered"], first["active"], first["goal_reached"], first["conversions"]) == (5, 5, 0, 0)
    assert {k: send_step(first)[k] for k in ("reached", "messages", "sent", "delivered", "failed", "skipped")} == {
        "reached": 5,
        "messages": 5,
        "sent": 1,
        "delivered": 0,
        "failed": 1,
        "skipped": 2,
    }
    assert send_step(first)["skipped_by_reason"] == {"holdout group": 1, "no sms opt-in": 1}
    assert first["lift"]["holdout"]["enrollments"] == 1

    # An hour later: the sent SMS is delivered and then delivered again (a repeated callback),
    # the queued one is sent and comes back undelivered, one entrant ordered before the
    # reminder and exits, the delivered one's customer orders and the journey completes.
    now = runtime.clock.advance(timedelta(hours=1))
    async with runtime.sessions() as session, session.begin():
        for _ in range(2):
            await session.exec(
                sa.update(messages)
                .where(messages.c.id == ids["m0"])
                .values(status="delivered", delivered_at=now, first_clicked_at=now, updated_at=now)
            )
        await session.exec(
            sa.update(messages)
            .where(messages.c.id == ids["m2"])
            .values(status="undelivered", sent_at=now, updated_at=now)
        )
        await session.exec(
            sa.update(enrollments)
            .where(enrollments.c.id == ids["e1"])
            .values(status="exited", exit_reason=EXIT_REASON, ended_at=now, cursor=None)
        )
        await session.exec(
            sa.update(enrollments)
            .where(enrollments.c.id == ids["e0"])
            .values(status="completed", ended_at=now, converted_at=now, cursor=None)
        )
        session.add(
            Conversion(
                order_key="O-1",
                event_id=1,
                customer_id=ids["c0"],
                enrollment_id=ids["e0"],
                journey_id=JOURNEY,
                message_id=ids["m0"],
                step_id=SEND,
                channel="sms",
                template="abandoned-cart-sms",
                revenue=Decimal("80.00"),
                converted_at=now,
            )
        )
    after = await assert_rollup_equals_live(client)
    assert (after["entered"], after["active"], after["goal_reached"], after["conversions"], after["revenue"]) == (
        5,
        3,
        1,
        1,
        80.0,
    )
    assert {k: send_step(after)[k] for k in ("sent", "delivered", "failed", "conversions", "revenue")} == {
        "sent": 2,
        "delivered": 1,
        "failed": 2,
        "conversions": 1,
        "revenue": 80.0,
    }
    assert after["exits"] == [
        {"status": "completed", "reason": None, "count": 1},
        {"status": "exited", "reason": EXIT_REASON, "count": 1},
    ]
    exit_step = next(step for step in after["steps"] if step["kind"] == "exit")
    assert exit_step["reached"] == 1
    assert next(step for step in after["steps"] if step["id"] == "already-ordered")["waiting"] == 3


async def test_waiting_is_live_between_refreshes(client, runtime):
    runtime.clock.set(START + DAY + timedelta(hours=2))
    ids = await build(runtime)
    await refresh_kpis_as_the_worker_does(client)
    async with runtime.sessions() as session, session.begin():  # a step moves the cursor: no timestamp changes
        await session.exec(sa.update(enrollments).where(enrollments.c.id == ids["e4"]).values(cursor=SEND))
    figures = await stats(client)
    assert next(step for step in figures["steps"] if step["id"] == "already-ordered")["waiting"] == 4
    assert send_step(figures)["waiting"] == 1
