"""Every message KPI on a hand-built dataset, exact figures, on SQLite and PostgreSQL.

Two journeys on 2026-03-02 (D1) and 2026-03-03 (D2):

    cart / sms-step / sms / cart-sms                 news / mail-step / email / news-email
    m1 c1 D1 delivered 0.0075   order O1 80.00       e1 c1 delivered, opened, clicked   order O4 50.00
    m2 c2 D1 delivered 0.0075   c2 replies +1h       e2 c2 delivered, opened            order O3 (no revenue)
    m3 c3 D1 undelivered 0.0075 (c3 wrote before)    e3 c3 failed: hard bounce
    m4 c4 D1 skipped: no sms opt-in                  e4 c4 undelivered: soft bounce (blocked)
    m5 c5 D1 skipped: holdout group                  e5 c5 delivered, unsubscribes +1 day
    m6 c6 D1 delivered 0.0150   c6 texts STOP +2h    e6 c6 delivered, unsubscribes +8 days (outside)
    m7 c1 D2 delivered 0.0075   order O2 20.00       e7 c2 skipped: no email address
    m8 c3 D2 queued
    plus an auto reply to c2 (no journey): never counted

Recipients are distinct per (day, step) cell: c1 counts on D1 and again on D2 for cart.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlmodel import select

from orchestrator.delivery.statuses import record_status
from orchestrator.storage.feedback_models import Consent, Conversion, InboundMessage, MessageStatusEvent
from orchestrator.storage.models import Customer, Enrollment, Message
from tests.conftest import START, refresh_kpis_as_the_worker_does

D1, D2 = START, START + timedelta(days=1)
H = timedelta(hours=1)


async def build_dataset(runtime) -> None:
    async with runtime.sessions() as session, session.begin():
        customers = {}
        for n in range(1, 7):
            customers[n] = Customer(user_id=f"c{n}", created_at=START, updated_at=START)
            session.add(customers[n])
        await session.flush()
        enrollments = {}
        for journey in ("cart", "news"):
            for n, customer in customers.items():
                enrollments[journey, n] = Enrollment(
                    journey_id=journey, journey_version="v1", customer_id=customer.id, status="completed", entered_at=D1
                )
                session.add(enrollments[journey, n])
        await session.flush()
        rows = {}

        def message(key, journey, n, created, status, **values):
            step, channel, template = (
                ("sms-step", "sms", "cart-sms") if journey == "cart" else ("mail-step", "email", "news-email")
            )
            sent_at = created + timedelta(minutes=1) if status not in ("skipped", "queued") else None
            rows[key] = Message(
                send_key=key,
                enrollment_id=enrollments[journey, n].id,
                customer_id=customers[n].id,
                journey_id=journey,
                step_id=step,
                channel=channel,
                template=template,
                status=status,
                created_at=created,
                updated_at=created,
                sent_at=sent_at,
                **values,
            )
            session.add(rows[key])

        delivered = dict(status="delivered")
        message("m1", "cart", 1, D1, **delivered, delivered_at=D1 + H, cost=Decimal("0.0075"))
        message("m2", "cart", 2, D1, **delivered, delivered_at=D1 + H, cost=Decimal("0.0075"))
        message("m3", "cart", 3, D1, "undelivered", cost=Decimal("0.0075"))
        message("m4", "cart", 4, D1, "skipped", status_reason="no sms opt-in")
        message("m5", "cart", 5, D1, "skipped", status_reason="holdout group")
        message("m6", "cart", 6, D1, **delivered, delivered_at=D1 + H, cost=Decimal("0.0150"))
        message("m7", "cart", 1, D2, **delivered, delivered_at=D2 + H, cost=Decimal("0.0075"))
        message("m8", "cart", 3, D2, "queued")
        message(
            "e1",
            "news",
            1,
            D1,
            **delivered,
            delivered_at=D1 + H,
            first_opened_at=D1 + 2 * H,
            first_clicked_at=D1 + 3 * H,
        )
        message("e2", "news", 2, D1, **delivered, delivered_at=D1 + H, first_opened_at=D1 + 2 * H)
        message("e3", "news", 3, D1, "failed", status_reason="550 5.1.1 unknown user")
        message("e4", "news", 4, D1, "undelivered")
        message("e5", "news", 5, D1, **delivered, delivered_at=D1 + H)
        message("e6", "news", 6, D1, **delivered, delivered_at=D1 + H)
        message("e7", "news", 2, D1, "skipped", status_reason="no email address")
        session.add(
            Message(
                send_key="auto-reply:1",
                customer_id=customers[2].id,
                channel="sms",
                status="sent",
                sent_at=D1,
                created_at=D1,
                updated_at=D1,
                cost=Decimal("0.0075"),
            )
        )
        await session.flush()

        for key, status in (("e3", "bounce"), ("e4", "blocked"), ("e1", "delivered")):
            session.add(
                MessageStatusEvent(message_id=rows[key].id, source="sendgrid", status=status, occurred_at=D1 + H)
            )
        inbound = [
            (2, "sms", D1 + 2 * H, "thanks!", None),
            (6, "sms", D1 + 3 * H, "STOP", "opt_out"),
            (3, "sms", D1 - H, "hello?", None),
        ]  # c3 wrote before m3 was sent: not a reply to it
        for i, (n, channel, at, body, keyword) in enumerate(inbound):
            session.add(
                InboundMessage(
                    provider_message_id=f"in-{i}",
                    customer_id=customers[n].id,
                    channel=channel,
                    from_address="+1",
                    to_address="+2",
                    body=body,
                    keyword=keyword,
                    received_at=at,
                )
            )
        for n, channel, at, source in (
            (6, "sms", D1 + 3 * H, "sms_keyword"),
            (5, "email", D2, "unsubscribe_link"),
            (6, "email", D1 + timedelta(days=8), "unsubscribe_link"),
        ):
            session.add(
                Consent(customer_id=customers[n].id, channel=channel, status="opted_out", source=source, recorded_at=at)
            )
        for order, key, n, revenue in (
            ("O1", "m1", 1, "80.00"),
            ("O2", "m7", 1, "20.00"),
            ("O3", "e2", 2, None),
            ("O4", "e1", 1, "50.00"),
        ):
            m = rows[key]
            session.add(
                Conversion(
                    order_key=order,
                    event_id=0,
                    customer_id=customers[n].id,
                    enrollment_id=m.enrollment_id,
                    journey_id=m.journey_id,
                    message_id=m.id,
                    step_id=m.step_id,
                    channel=m.channel,
                    template=m.template,
                    revenue=Decimal(revenue) if revenue else None,
                    converted_at=m.sent_at + 3 * H,
                )
            )


CART = dict(
    messages=8,
    sent=5,
    delivered=4,
    failed=1,
    skipped=2,
    skipped_by_reason={"holdout group": 1, "no sms opt-in": 1},
    capped=0,
    recipients=5,
    delivery_rate=80.0,
    email_sent=0,
    email_delivered=0,
    opened=0,
    open_rate=None,
    clickable=0,
    clicked=0,
    click_rate=None,
    bounced=0,
    bounce_rate=None,
    replied=1,
    reply_rate=20.0,
    opted_out=1,
    opt_out_rate=20.0,
    conversions=2,
    conversion_rate=40.0,
    revenue=100.0,
    average_order_value=50.0,
    cost=0.045,
    cost_per_acquisition=0.0225,
    return_on_spend=2222.2222,
)
NEWS = dict(
    messages=7,
    sent=6,
    delivered=4,
    failed=2,
    skipped=1,
    skipped_by_reason={"no email address": 1},
    capped=0,
    recipients=6,
    delivery_rate=66.67,
    email_sent=6,
    email_delivered=4,
    opened=2,
    open_rate=50.0,
    clickable=4,
    clicked=1,
    click_rate=25.0,
    bounced=2,
    bounce_rate=33.33,
    replied=0,
    reply_rate=0.0,
    opted_out=1,
    opt_out_rate=16.67,
    conversions=2,
    conversion_rate=33.33,
    revenue=50.0,
    average_order_value=50.0,
    cost=None,
    cost_per_acquisition=None,
    return_on_spend=None,
)
NO_GROUP = dict(journey=None, step=None, channel=None, template=None, day=None)


async def kpis(client, **params) -> dict:
    await refresh_kpis_as_the_worker_does(client)
    response = await client.get("/v1/kpis", params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def dataset(runtime):
    await build_dataset(runtime)


async def test_every_figure_of_one_journey(client, dataset):
    [row] = (await kpis(client, journey="cart"))["rows"]
    assert row == {**NO_GROUP, **CART}


async def test_email_figures(client, dataset):
    for params in ({"journey": "news"}, {"step": "mail-step"}, {"template": "news-email"}, {"channel": "email"}):
        [row] = (await kpis(client, **params))["rows"]
        assert row == {**NO_GROUP, **NEWS}, params


async def test_grouped_by_journey_step_channel_and_template(client, dataset):
    rows = (await kpis(client, group_by=["journey", "step", "channel", "template"]))["rows"]
    assert rows == [
        {**NO_GROUP, "journey": "cart", "step": "sms-step", "channel": "sms", "template": "cart-sms", **CART},
        {**NO_GROUP, "journey": "news", "step": "mail-step", "channel": "email", "template": "news-email", **NEWS},
    ]


async def test_everything_together(client, dataset):
    [row] = (await kpis(client))["rows"]
    assert (row["messages"], row["sent"], row["recipients"], row["conversions"], row["revenue"]) == (
        15,
        11,
        11,
        4,
        150.0,
    )
    assert (row["replied"], row["opted_out"], row["conversion_rate"], row["cost"]) == (1, 2, 36.36, 0.045)
    assert row["skipped_by_reason"] == {"holdout group": 1, "no email address": 1, "no sms opt-in": 1}
    assert (row["average_order_value"], row["cost_per_acquisition"], row["return_on_spend"]) == (
        50.0,
        0.0112,
        3333.3333,
    )


async def test_grouped_by_day(client, dataset):
    rows = (await kpis(client, journey="cart", group_by="day"))["rows"]
    assert [r["day"] for r in rows] == ["2026-03-02", "2026-03-03"]
    first, second = rows
    assert {
        k: first[k]
        for k in (
            "messages",
            "sent",
            "delivered",
            "failed",
            "skipped",
            "recipients",
            "replied",
            "opted_out",
            "conversions",
            "revenue",
            "cost",
            "conversion_rate",
        )
    } == dict(
        messages=6,
        sent=4,
        delivered=3,
        failed=1,
        skipped=2,
        recipients=4,
        replied=1,
        opted_out=1,
        conversions=1,
        revenue=80.0,
        cost=0.0375,
        conversion_rate=25.0,
    )
    assert {
        k: second[k]
        for k in (
            "messages",
            "sent",
            "delivered",
            "skipped",
            "recipients",
            "conversions",
            "revenue",
            "cost",
            "conversion_rate",
            "skipped_by_reason",
        )
    } == dict(
        messages=2,
        sent=1,
        delivered=1,
        skipped=0,
        recipients=1,
        conversions=1,
        revenue=20.0,
        cost=0.0075,
        conversion_rate=100.0,
        skipped_by_reason={},
    )


async def test_time_range_is_half_open_on_creation_time(client, dataset):
    [row] = (await kpis(client, **{"from": D2.isoformat(), "to": (D2 + timedelta(days=1)).isoformat()}))["rows"]
    assert (row["messages"], row["sent"], row["conversions"], row["revenue"]) == (2, 1, 1, 20.0)
    [row] = (await kpis(client, **{"from": D1.isoformat(), "to": D2.isoformat()}))["rows"]
    assert (row["messages"], row["sent"], row["conversions"], row["revenue"]) == (13, 10, 3, 130.0)


async def test_ranges_off_midnight_count_the_same_as_whole_days(client, dataset):
    whole_days = await kpis(
        client, **{"from": "2026-03-02T00:00:00Z", "to": "2026-03-04T00:00:00Z"}, group_by=["journey", "day"]
    )
    partial = await kpis(
        client, **{"from": "2026-03-02T16:00:00Z", "to": "2026-03-03T18:00:00Z"}, group_by=["journey", "day"]
    )
    everything = await kpis(client, group_by=["journey", "day"])
    assert partial["rows"] == whole_days["rows"] == everything["rows"]
    [row] = (await kpis(client, **{"from": "2026-03-02T17:00:00.000001Z", "to": "2026-03-03T17:00:00Z"}))["rows"]
    assert row["messages"] == 0  # everything on D1 was created at 17:00 sharp, D2's at 17:00 the next day


async def test_later_changes_reach_the_rollup(client, runtime, dataset):
    [before] = (await kpis(client, journey="cart", group_by="day", **{"from": D2.isoformat()}))["rows"]
    assert (before["sent"], before["delivered"], before["recipients"]) == (1, 1, 1)
    async with runtime.sessions() as session, session.begin():
        m8 = (await session.exec(select(Message).where(Message.send_key == "m8"))).one()
        await record_status(session, m8, source="twilio", status="delivered", now=runtime.clock.now())
    [after] = (await kpis(client, journey="cart", group_by="day", **{"from": D2.isoformat()}))["rows"]
    assert (after["sent"], after["delivered"], after["recipients"], after["delivery_rate"]) == (2, 2, 2, 100.0)


async def test_reads_show_what_the_worker_last_counted(client, runtime, dataset):
    await refresh_kpis_as_the_worker_does(client)
    async with runtime.sessions() as session, session.begin():
        m8 = (await session.exec(select(Message).where(Message.send_key == "m8"))).one()
        await record_status(session, m8, source="twilio", status="delivered", now=runtime.clock.now())
    read = {"journey": "cart", "group_by": "day"}  # whole days: from the rollups
    [_, stale] = (await client.get("/v1/kpis", params=read)).json()["rows"]
    assert (stale["sent"], stale["delivered"]) == (1, 1)  # reading did not count the change in
    # Simulated time moving on is the worker's cue: its rollup refresh is due too.
    assert (await client.post("/v1/admin/clock/advance", json={"seconds": 1})).status_code == 200
    [_, fresh] = (await client.get("/v1/kpis", params=read)).json()["rows"]
    assert (fresh["sent"], fresh["delivered"]) == (2, 2)


async def test_reading_kpis_writes_nothing_and_takes_no_lock(client, runtime, dataset):
    statements: list[str] = []

    def keep(_connection, _cursor, statement, _parameters, _context, _executemany) -> None:
        statements.append(statement)

    sa.event.listen(runtime.engine.sync_engine, "before_cursor_execute", keep)
    try:
        # The rollups were never refreshed since the dataset was written: a read that
        # refreshed them would write now.
        for params in (
            {"group_by": ["journey", "step", "channel", "template", "day"]},
            {"journey": "cart", "include": "customers", "from": "2026-03-02T08:00:00Z"},
        ):
            assert (await client.get("/v1/kpis", params=params)).status_code == 200
    finally:
        sa.event.remove(runtime.engine.sync_engine, "before_cursor_execute", keep)
    assert statements  # the listener saw the reads
    writes = [
        s
        for s in statements
        if re.match(r"\s*(INSERT|UPDATE|DELETE|CREATE|DROP)\b", s, re.IGNORECASE)
        or "advisory" in s.lower()
        or "for update" in s.lower()
    ]
    assert writes == []


async def test_later_orders_replies_and_goals_reach_the_rollups(client, runtime, dataset):
    [d1, d2] = (await kpis(client, journey="cart", group_by="day"))["rows"]
    assert (d1["conversions"], d2["replied"]) == (1, 0)
    assert (await kpis(client, journey="cart"))["lift"]["treatment"]["converted"] == 0
    runtime.clock.advance(timedelta(days=1, hours=2))  # D2 19:00
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        m2 = (await session.exec(select(Message).where(Message.send_key == "m2"))).one()
        c1 = (await session.exec(select(Customer).where(Customer.user_id == "c1"))).one()
        session.add(
            Conversion(
                order_key="O5",
                event_id=0,
                customer_id=m2.customer_id,
                enrollment_id=m2.enrollment_id,
                journey_id="cart",
                message_id=m2.id,
                step_id=m2.step_id,
                channel="sms",
                template=m2.template,
                revenue=Decimal("10.00"),
                converted_at=now,
            )
        )
        session.add(
            InboundMessage(
                provider_message_id="in-late",
                customer_id=c1.id,
                channel="sms",
                from_address="+1",
                to_address="+2",
                body="ok",
                received_at=now,
            )
        )  # answers m7, sent on D2
        enrollment = (await session.exec(select(Enrollment).where(Enrollment.id == m2.enrollment_id))).one()
        enrollment.converted_at = now
    [d1, d2] = (await kpis(client, journey="cart", group_by="day"))["rows"]
    assert (d1["conversions"], d1["revenue"], d2["replied"], d2["reply_rate"]) == (2, 90.0, 1, 100.0)
    lift = (await kpis(client, journey="cart"))["lift"]
    assert (lift["treatment"]["enrollments"], lift["treatment"]["converted"]) == (6, 1)


async def test_rebuild(client, dataset):
    first = await kpis(client, group_by=["journey", "step", "day"])
    response = await client.post("/v1/kpis/rebuild")
    assert response.status_code == 200, response.text
    assert await kpis(client, group_by=["journey", "step", "day"]) == first


async def test_nothing_matches_gives_zeros_and_nulls(client, dataset):
    [row] = (await kpis(client, journey="no-such-journey"))["rows"]
    assert (row["messages"], row["sent"], row["recipients"], row["revenue"]) == (0, 0, 0, 0.0)
    assert row["delivery_rate"] is None and row["conversion_rate"] is None and row["reply_rate"] is None
    assert row["cost"] is None and row["return_on_spend"] is None and row["average_order_value"] is None
    assert (await kpis(client, journey="no-such-journey", group_by="day"))["rows"] == []


async def test_bad_queries_are_rejected(client):
    assert (await client.get("/v1/kpis", params={"group_by": "weather"})).status_code == 422
    assert (
        await client.get("/v1/kpis", params={"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"})
    ).status_code == 422
