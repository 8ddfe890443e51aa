"""Provider statuses applied to messages: forward only, order-proof, one place for all."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlmodel import col, select

from orchestrator.clock import utc
from orchestrator.delivery.statuses import (
    first_receipt,
    next_status,
    record_price,
    record_status,
)
from orchestrator.storage.feedback_models import MessageStatusEvent
from orchestrator.storage.models import Customer, Message
from tests.conftest import START

T = [START + timedelta(minutes=i) for i in range(10)]


@pytest.mark.parametrize(
    "current, reported, expected",
    [
        ("sent", "queued", None),
        ("sent", "delivered", "delivered"),
        ("delivered", "read", "read"),
        ("read", "delivered", None),
        ("delivered", "sent", None),
        ("sent", "undelivered", "undelivered"),
        ("sent", "failed", "failed"),
        ("delivered", "undelivered", None),
        ("delivered", "failed", None),
        ("read", "failed", None),
        ("failed", "delivered", "delivered"),  # proof of delivery wins over an earlier failure
        ("undelivered", "failed", "failed"),
        ("failed", "undelivered", None),
        ("unknown", "sent", "sent"),
        ("unknown", "failed", "failed"),
        ("queued", "delivered", "delivered"),
        ("sending", "delivered", None),
        ("skipped", "delivered", None),
        ("sent", "open", "delivered"),
        ("delivered", "click", None),
        ("read", "open", None),
        ("sent", "bounce", "failed"),
        ("sent", "dropped", "failed"),
        ("sent", "blocked", "undelivered"),
        ("sent", "processed", None),
        ("unknown", "processed", "sent"),
        ("sent", "deferred", None),
        ("sent", "unsubscribe", None),
        ("sent", "no-such-status", None),
    ],
)
def test_status_table(current, reported, expected):
    assert next_status(current, reported) == expected


async def make_message(runtime, *, status="sent", provider_message_id="SM-1", **values) -> int:
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        customer = Customer(user_id=f"u-{provider_message_id}", email="ann@example.com", created_at=now, updated_at=now)
        session.add(customer)
        await session.flush()
        message = Message(
            send_key=f"key-{provider_message_id}",
            customer_id=customer.id,
            channel="sms",
            status=status,
            provider_message_id=provider_message_id,
            created_at=now,
            updated_at=now,
            **values,
        )
        session.add(message)
        await session.flush()
        return message.id


async def report(runtime, message_id: int, status: str, at=None, **kwargs) -> None:
    async with runtime.sessions() as session, session.begin():
        message = await session.get(Message, message_id)
        await record_status(
            session, message, source="twilio", status=status, now=runtime.clock.now(), occurred_at=at, **kwargs
        )


async def load(runtime, message_id: int) -> tuple[Message, list[MessageStatusEvent]]:
    async with runtime.sessions() as session:
        message = await session.get(Message, message_id)
        history = (
            await session.exec(
                select(MessageStatusEvent)
                .where(MessageStatusEvent.message_id == message_id)
                .order_by(col(MessageStatusEvent.id))
            )
        ).all()
        return message, list(history)


# Twilio's real sequences; any arrival order must end in the same state.
SEQUENCES = {
    "delivered": (["queued", "sent", "delivered"], "delivered"),
    "read": (["queued", "sent", "delivered", "read"], "read"),
    "undelivered": (["queued", "sent", "undelivered"], "undelivered"),
    "failed": (["queued", "failed"], "failed"),
}


@pytest.mark.parametrize("name", SEQUENCES)
async def test_every_arrival_order_ends_in_the_same_state(runtime, name):
    statuses, final = SEQUENCES[name]
    for n, order in enumerate(itertools.permutations(range(len(statuses)))):
        message_id = await make_message(runtime, provider_message_id=f"SM-{name}-{n}")
        for i in order:
            failure = statuses[i] in ("undelivered", "failed")
            await report(runtime, message_id, statuses[i], at=T[i], error_code="30003" if failure else None)
        message, history = await load(runtime, message_id)
        assert message.status == final, order
        assert len(history) == len(statuses)
        if final in ("delivered", "read"):
            assert utc(message.delivered_at) == T[statuses.index("delivered")]
            assert message.error_code is None
        else:
            assert message.error_code == "30003" and message.delivered_at is None


async def test_a_failure_after_delivery_is_history_only(runtime):
    message_id = await make_message(runtime)
    await report(runtime, message_id, "delivered", at=T[1])
    await report(runtime, message_id, "undelivered", at=T[2], error_code="30005")
    message, history = await load(runtime, message_id)
    assert (message.status, message.error_code) == ("delivered", None)
    assert [(h.status, h.error_code) for h in history] == [("delivered", None), ("undelivered", "30005")]


async def test_a_provider_status_resolves_an_unknown_send(runtime):
    message_id = await make_message(
        runtime,
        status="unknown",
        provider_message_id=None,
        status_reason="interrupted between claim and provider answer",
    )
    await report(runtime, message_id, "sent", at=T[1], provider_message_id="SM-late")
    message, _ = await load(runtime, message_id)
    assert (message.status, message.status_reason, message.provider_message_id) == ("sent", None, "SM-late")
    assert utc(message.sent_at) == T[1]


async def test_a_send_in_flight_is_not_changed_under_the_worker(runtime):
    message_id = await make_message(runtime, status="sending", provider_message_id=None)
    await report(runtime, message_id, "delivered", provider_message_id="SM-x")
    message, history = await load(runtime, message_id)
    assert (message.status, message.provider_message_id) == ("sending", None)
    assert [h.status for h in history] == ["delivered"]


async def test_engagement_implies_delivery_and_keeps_the_first_times(runtime):
    message_id = await make_message(runtime)
    await report(runtime, message_id, "click", at=T[5])
    await report(runtime, message_id, "open", at=T[4])
    await report(runtime, message_id, "open", at=T[3])  # an earlier open, reported late
    await report(runtime, message_id, "open", at=T[6])
    message, history = await load(runtime, message_id)
    assert message.status == "delivered"
    assert (utc(message.first_opened_at), utc(message.first_clicked_at)) == (T[3], T[5])
    assert utc(message.delivered_at) == T[3]
    await report(runtime, message_id, "delivered", at=T[1])  # the real receipt, late: its time wins
    message, history = await load(runtime, message_id)
    assert utc(message.delivered_at) == T[1] and len(history) == 5


async def test_receipts_say_whether_a_callback_is_new(runtime):
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        assert await first_receipt(session, "twilio-status", "SM1:delivered", now) is True
        assert await first_receipt(session, "twilio-status", "SM1:delivered", now) is False
        assert await first_receipt(session, "sendgrid", "SM1:delivered", now) is True  # per source


async def test_concurrent_callbacks_for_one_message_queue_on_its_row(runtime):
    """`read` and `delivered` racing: the second waits for the first, then sees `read`."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite has one writer at a time anyway")
    message_id = await make_message(runtime)
    async with runtime.sessions() as first:
        async with first.begin():
            await record_status(
                first, await first.get(Message, message_id), source="twilio", status="read", now=runtime.clock.now()
            )
            second = asyncio.create_task(report(runtime, message_id, "delivered"))
            await asyncio.sleep(0.3)
            assert not second.done()  # blocked on the row lock, not acting on a stale `sent`
        await second
    message, history = await load(runtime, message_id)
    assert message.status == "read" and [h.status for h in history] == ["read", "delivered"]


async def test_the_first_recorded_price_stays(runtime):
    message_id = await make_message(runtime)
    later = runtime.clock.now() + timedelta(minutes=1)
    async with runtime.sessions() as session, session.begin():
        assert await record_price(session, message_id, Decimal("0.0079"), "USD", now=later)
    async with runtime.sessions() as session, session.begin():  # a second callback's lookup
        assert not await record_price(session, message_id, Decimal("0.0158"), "USD", now=later)
    message, _ = await load(runtime, message_id)
    # `updated_at` moves, so the KPI rollups count the cost again.
    assert (message.cost, message.cost_currency, utc(message.updated_at)) == (Decimal("0.0079"), "USD", later)
