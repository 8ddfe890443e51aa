"""The reconciler asks the provider about ambiguous sends: the fake Twilio over real HTTP,
on SQLite and PostgreSQL. What the fake received is the witness."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from orchestrator.channels.base import Channel, OutboundMessage
from orchestrator.clock import SimulatedClock, utc
from orchestrator.engine.dispatch import dispatch_queued_messages
from orchestrator.engine.reconcile import reconcile_round
from orchestrator.startup import build_runtime
from orchestrator.storage.feedback_models import MessageStatusEvent
from orchestrator.storage.models import Customer, Message
from tests.conftest import _reset, make_settings
from tests.providers import fake_twilio

PHONE = "+14155550123"
AFTER, RESEND_AFTER = 60, 120  # seconds: reconcile_after, reconcile_resend_after


@pytest.fixture(scope="module")
def twilio():
    with fake_twilio() as fake:
        yield fake


async def make_runtime(database_url, twilio, clock, **overrides):
    values = dict(
        sms_provider="twilio",
        whatsapp_provider="twilio",
        email_provider="local",
        twilio_api_base_url=twilio.url,
        fake_twilio_auth_token=twilio.auth_token,
        public_base_url="http://127.0.0.1:9",
        reconcile_after_seconds=AFTER,
        reconcile_resend_after_seconds=RESEND_AFTER,
        reconcile_retry_seconds=30,
        reconcile_status_after_seconds=600,
        reconcile_lookups_per_second=1000,
    )
    settings = make_settings(database_url, **(values | overrides))
    return await build_runtime(settings, clock=clock)


@pytest.fixture
async def runtime(database_url, twilio):
    twilio.clear()
    await _reset(database_url)
    # The fake stamps its messages with the real time, so ours starts there too.
    runtime = await make_runtime(database_url, twilio, SimulatedClock(datetime.now(timezone.utc)))
    yield runtime
    await runtime.aclose()


async def make_message(
    runtime, key: str, status: str, *, channel="sms", body="Your cart misses you", provider="twilio", **values
) -> int:
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        customer = Customer(user_id=f"u-{key}", phone=PHONE, created_at=now, updated_at=now)
        session.add(customer)
        await session.flush()
        message = Message(
            send_key=key,
            customer_id=customer.id,
            channel=channel,
            provider=provider,
            status=status,
            to_address=PHONE if channel != "email" else "ann@example.com",
            body=body,
            created_at=now,
            updated_at=now,
            next_attempt_at=now,
            sending_at=now,
            sent_at=now if status == "sent" else None,
            **({"attempts": 1} | values),
        )
        session.add(message)
        await session.flush()
        return message.id


async def load(runtime, message_id: int) -> Message:
    async with runtime.sessions() as session:
        return await session.get(Message, message_id)


async def provider_accepts(runtime, body: str = "Your cart misses you") -> str:
    """What a worker killed after Twilio accepted did: the send reached the provider."""
    adapter = runtime.channels.for_channel(Channel.sms)
    result = await adapter.send(OutboundMessage(send_key="k", channel=Channel.sms, to=PHONE, body=body))
    return result.provider_message_id


async def delivered_at_the_fake(runtime, sid: str) -> None:
    adapter = runtime.channels.for_channel(Channel.sms)
    for _ in range(200):
        if (await adapter.fetch_status(sid)).records[0].status == "delivered":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{sid} never delivered")


async def test_an_interrupted_send_the_provider_has_is_adopted_never_resent(runtime, twilio):
    message_id = await make_message(runtime, "e1:cart", "sending")
    sid = await provider_accepts(runtime)
    await delivered_at_the_fake(runtime, sid)
    runtime.clock.advance(timedelta(seconds=AFTER + 1))

    report = await reconcile_round(runtime)
    await dispatch_queued_messages(runtime)

    message = await load(runtime, message_id)
    assert (report.adopted, report.requeued) == (1, 0)
    assert (message.status, message.provider_message_id) == ("delivered", sid)
    assert message.cost is not None  # the price came with the record
    assert [m["sid"] for m in twilio.witnessed()] == [sid]  # once, by the worker that died
    async with runtime.sessions() as session:
        history = (
            await session.exec(select(MessageStatusEvent.status).where(MessageStatusEvent.message_id == message_id))
        ).all()
    assert history == ["delivered"]


async def test_a_send_the_provider_never_got_goes_out_once_after_the_grace(runtime, twilio):
    message_id = await make_message(runtime, "e1:cart", "sending")
    runtime.clock.advance(timedelta(seconds=AFTER + 1))

    early = await reconcile_round(runtime)  # past the age, not past the provider's lag
    assert (early.undecided, (await load(runtime, message_id)).status) == (1, "sending")
    runtime.clock.advance(timedelta(seconds=RESEND_AFTER))
    late = await reconcile_round(runtime)
    queued = await load(runtime, message_id)
    await dispatch_queued_messages(runtime)
    again = await reconcile_round(runtime)

    assert late.requeued == 1 and queued.status == "queued" and "same send key" in queued.status_reason
    message = await load(runtime, message_id)
    assert message.status == "sent" and message.send_key == "e1:cart"
    assert [m["sid"] for m in twilio.witnessed()] == [message.provider_message_id]
    assert not again  # nothing left to settle


async def test_an_unknown_send_is_settled_too(runtime, twilio):
    message_id = await make_message(runtime, "e1:cart", "unknown", status_reason="no answer")
    sid = await provider_accepts(runtime)
    runtime.clock.advance(timedelta(seconds=AFTER + 1))

    assert (await reconcile_round(runtime)).adopted == 1
    assert (await load(runtime, message_id)).provider_message_id == sid


async def test_an_unreachable_provider_is_asked_again_later_never_guessed(database_url, twilio):
    twilio.clear()
    await _reset(database_url)
    from orchestrator.fakes.server import free_port

    clock = SimulatedClock(datetime.now(timezone.utc))
    runtime = await make_runtime(database_url, twilio, clock, twilio_api_base_url=f"http://127.0.0.1:{free_port()}")
    try:
        message_id = await make_message(runtime, "e1:cart", "sending")
        clock.advance(timedelta(seconds=AFTER + RESEND_AFTER))
        first = await reconcile_round(runtime)
        clock.advance(timedelta(seconds=10))  # before the retry interval: not asked again yet
        second = await reconcile_round(runtime)
        clock.advance(timedelta(seconds=30))
        third = await reconcile_round(runtime)
        message = await load(runtime, message_id)
    finally:
        await runtime.aclose()
    assert (first.undecided, second.undecided, third.undecided) == (1, 0, 1)
    assert message.status == "sending" and twilio.witnessed() == []


async def test_a_send_nobody_can_ask_about_becomes_unknown(runtime, twilio):
    email_id = await make_message(runtime, "e1:mail", "sending", channel="email", provider="local")
    runtime.clock.advance(timedelta(seconds=AFTER + 1))

    report = await reconcile_round(runtime)

    message = await load(runtime, email_id)
    assert report.marked_unknown == 1
    assert message.status == "unknown" and "not resent automatically" in message.status_reason


async def test_a_provider_id_another_message_owns_is_not_adopted(runtime, twilio):
    sid = await provider_accepts(runtime)
    await make_message(runtime, "e1:first", "sent", provider_message_id=sid)
    second_id = await make_message(runtime, "e2:same-body", "sending")
    runtime.clock.advance(timedelta(seconds=AFTER + 1))

    report = await reconcile_round(runtime)

    assert (report.adopted, (await load(runtime, second_id)).status) == (0, "sending")


async def test_two_workers_settle_each_send_exactly_once(database_url, twilio):
    twilio.clear()
    await _reset(database_url)
    clock = SimulatedClock(datetime.now(timezone.utc))
    first = await make_runtime(database_url, twilio, clock)
    second = await make_runtime(database_url, twilio, clock)
    try:
        ids = [await make_message(first, f"e{i}:cart", "sending", body=f"Cart {i}") for i in range(20)]
        for i in range(0, 20, 2):  # half reached Twilio before their workers died
            await provider_accepts(first, body=f"Cart {i}")
        clock.advance(timedelta(seconds=AFTER + RESEND_AFTER))
        reports = await asyncio.gather(reconcile_round(first), reconcile_round(second))
        await asyncio.gather(dispatch_queued_messages(first), dispatch_queued_messages(second))
        rows = [await load(first, message_id) for message_id in ids]
    finally:
        await first.aclose()
        await second.aclose()
    assert sum(r.adopted for r in reports) == 10 and sum(r.requeued for r in reports) == 10
    assert {row.status for row in rows} <= {"sent", "delivered"}
    bodies = sorted(m["body"] for m in twilio.witnessed())
    assert bodies == sorted(f"Cart {i}" for i in range(20))  # every one once, none twice
    assert sorted(m["sid"] for m in twilio.witnessed()) == sorted(row.provider_message_id for row in rows)


async def test_a_sent_message_whose_callbacks_were_lost_gets_its_status_fetched(runtime, twilio):
    sid = await provider_accepts(runtime)
    stale_id = await make_message(runtime, "e1:cart", "sent", provider_message_id=sid)
    runtime.clock.advance(timedelta(seconds=601))
    fresh_id = await make_message(runtime, "e2:cart", "sent", provider_message_id=await provider_accepts(runtime))
    await delivered_at_the_fake(runtime, sid)

    report = await reconcile_round(runtime)
    repeat = await reconcile_round(runtime)

    assert (report.statuses_fetched, report.statuses_changed) == (1, 1)
    assert (await load(runtime, stale_id)).status == "delivered"
    assert (await load(runtime, fresh_id)).status == "sent"  # not yet due
    assert repeat.statuses_fetched == 0


def test_a_status_that_stays_sent_is_fetched_again_at_doubling_ages_then_given_up():
    from types import SimpleNamespace

    from orchestrator.engine.reconcile_status import next_fetch_mark

    settings = SimpleNamespace(
        reconcile_status_after_seconds=600, reconcile_retry_seconds=60, reconcile_status_give_up_seconds=86400
    )
    now = datetime(2026, 3, 2, 12, tzinfo=timezone.utc)
    due_at = lambda age: next_fetch_mark(timedelta(seconds=age), now, settings) + timedelta(seconds=600)
    assert due_at(600) == now + timedelta(seconds=600)  # fetched at 10 min of age, next at 20
    assert due_at(3600) == now + timedelta(seconds=3600)  # at 1 h, next at 2 h
    assert due_at(10) == now + timedelta(seconds=60)  # never sooner than the retry interval
    assert next_fetch_mark(timedelta(days=1), now, settings) is None  # given up: out of the range


async def test_a_requeue_gives_back_the_attempt_the_crash_cut_off(runtime, twilio):
    """A worker killed mid-send used none of the retry budget: the provider never saw it."""
    message_id = await make_message(runtime, "e1:cart", "sending", attempts=3)
    runtime.clock.advance(timedelta(seconds=AFTER + RESEND_AFTER))

    report = await reconcile_round(runtime)

    queued = await load(runtime, message_id)
    assert report.requeued == 1
    assert (queued.status, queued.attempts, queued.requeues) == ("queued", 2, 1)
    assert utc(queued.next_attempt_at) == runtime.clock.now()  # due at once: no backoff for a crash
    await dispatch_queued_messages(runtime)
    sent = await load(runtime, message_id)
    assert (sent.status, sent.attempts, sent.requeues) == ("sent", 3, 1)


async def test_a_send_cut_off_again_and_again_fails_for_a_person(runtime, twilio):
    from orchestrator.engine.retry import MAX_REQUEUES

    message_id = await make_message(runtime, "e1:cart", "sending", requeues=MAX_REQUEUES)
    runtime.clock.advance(timedelta(seconds=AFTER + RESEND_AFTER))

    report = await reconcile_round(runtime)
    await dispatch_queued_messages(runtime)

    message = await load(runtime, message_id)
    assert (report.requeued, report.gave_up) == (0, 1)
    assert message.status == "failed" and f"cut off {MAX_REQUEUES + 1} times" in message.status_reason
    assert twilio.witnessed() == []
