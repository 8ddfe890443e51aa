"""From schedule to messages: the snapshot, batches, the rate cap, the failure pause, done."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import limits.aio.storage.memory
import pytest
import sqlalchemy as sa

from orchestrator.broadcasts.sending import advance_broadcasts
from orchestrator.channels.base import Channel
from orchestrator.channels.local import LocalSmsAdapter
from orchestrator.channels.ratelimit import SendRateLimiter
from orchestrator.channels.registry import ChannelRegistry
from orchestrator.clock import utc
from orchestrator.delivery.conversions import in_holdout
from orchestrator.engine.loop import WorkerLoop
from orchestrator.events.ingest import ingest
from orchestrator.events.schemas import IdentifyCall
from orchestrator.policies.frequency import load_frequency_policy
from orchestrator.storage.broadcast_models import BroadcastRecipient
from orchestrator.storage.models import Customer, Message
from orchestrator.storage.segment_models import SegmentMember
from orchestrator.vocabulary import MessageStatus
from tests.broadcasts.helpers import add_customers, broadcast_messages, recipient_count, scheduled, state_of
from tests.conftest import START
from tests.plans import captured, plan_of

HOUR = timedelta(hours=1)


async def test_a_scheduled_broadcast_sends_one_message_per_recipient_and_finishes(runtime):
    users = await add_customers(runtime, 5)
    broadcast_id = await scheduled(runtime, user_ids=users)
    await advance_broadcasts(runtime)
    assert (await state_of(runtime, broadcast_id)).state == "sending"
    await WorkerLoop(runtime).drain()
    await advance_broadcasts(runtime)  # nothing left queued: done
    messages = await broadcast_messages(runtime, broadcast_id)
    assert sorted(m.send_key for m in messages) == sorted(f"broadcast:{broadcast_id}:{m.customer_id}" for m in messages)
    assert len(messages) == 5 and {m.status for m in messages} == {MessageStatus.sent}
    assert all("SPRING15" in m.body for m in messages)
    assert (await state_of(runtime, broadcast_id)).state == "done"


async def test_the_audience_is_the_snapshot_taken_when_the_schedule_arrives(runtime):
    await add_customers(runtime, 3)
    broadcast_id = await scheduled(
        runtime, user_ids=["c0", "c1", "c2", "late"], schedule={"at": (START + HOUR).isoformat()}
    )
    await advance_broadcasts(runtime)
    assert (await state_of(runtime, broadcast_id)).state == "scheduled"  # not yet its time: no snapshot
    runtime.clock.advance(HOUR)
    await advance_broadcasts(runtime)
    assert (await state_of(runtime, broadcast_id)).recipients == 3 == await recipient_count(runtime, broadcast_id)
    async with runtime.sessions() as session, session.begin():
        await ingest(
            session, runtime, [IdentifyCall(userId="late", traits={"phone": "+33699999999", "sms_opt_in": True})]
        )
    await WorkerLoop(runtime).drain()
    await advance_broadcasts(runtime)
    users = {m.customer_id for m in await broadcast_messages(runtime, broadcast_id)}
    assert len(users) == 3 and (await state_of(runtime, broadcast_id)).state == "done"


async def test_local_time_is_each_recipients_own_ten_oclock(runtime):
    calls = [
        IdentifyCall(userId="paris", traits={"phone": "+33612340001", "sms_opt_in": True, "timezone": "Europe/Paris"}),
        IdentifyCall(userId="tokyo", traits={"phone": "+33612340002", "sms_opt_in": True, "timezone": "Asia/Tokyo"}),
        IdentifyCall(
            userId="la", traits={"phone": "+33612340003", "sms_opt_in": True, "timezone": "America/Los_Angeles"}
        ),
        IdentifyCall(userId="unknown", traits={"email": "u@example.com", "sms_opt_in": True}),  # no phone, no zone
    ]
    async with runtime.sessions() as session, session.begin():
        await ingest(session, runtime, calls)
    broadcast_id = await scheduled(
        runtime,
        user_ids=["paris", "tokyo", "la", "unknown"],
        schedule={"date": "2026-03-03", "local_time": "10:00", "fallback_timezone": "Europe/Lisbon"},
    )
    runtime.clock.set(datetime(2026, 3, 2, 20, 0, tzinfo=timezone.utc))  # 10:00 on the 3rd at UTC+14
    await advance_broadcasts(runtime)
    async with runtime.sessions() as session:
        due = dict(
            (
                await session.exec(
                    sa.select(Customer.user_id, BroadcastRecipient.due_at).join(
                        Customer, Customer.id == BroadcastRecipient.customer_id
                    )
                )
            ).all()
        )
    assert {user: utc(at) for user, at in due.items()} == {
        "tokyo": datetime(2026, 3, 3, 1, 0, tzinfo=timezone.utc),
        "paris": datetime(2026, 3, 3, 9, 0, tzinfo=timezone.utc),
        "unknown": datetime(2026, 3, 3, 10, 0, tzinfo=timezone.utc),  # Lisbon, the fallback: UTC in March
        "la": datetime(2026, 3, 3, 18, 0, tzinfo=timezone.utc),
    }
    sent_by_then = {}
    for hour in (1, 9, 10, 18):
        runtime.clock.set(datetime(2026, 3, 3, hour, 0, tzinfo=timezone.utc))
        await advance_broadcasts(runtime)
        sent_by_then[hour] = len(await broadcast_messages(runtime, broadcast_id))
    assert sent_by_then == {1: 1, 9: 2, 10: 3, 18: 4}


async def test_the_rate_cap_limits_messages_made_per_minute(runtime):
    users = await add_customers(runtime, 25)
    broadcast_id = await scheduled(runtime, user_ids=users, rate_limit_per_minute=10)
    made = []
    for _ in range(3):
        await advance_broadcasts(runtime)
        await advance_broadcasts(runtime)  # a second round in the same minute adds nothing
        made.append(len(await broadcast_messages(runtime, broadcast_id)))
        runtime.clock.advance(timedelta(seconds=61))
    assert made == [10, 20, 25]


async def test_a_failure_rate_over_the_threshold_pauses_the_broadcast(runtime):
    users = await add_customers(runtime, 30)
    broadcast_id = await scheduled(
        runtime, user_ids=users, pause_when_failure_rate_above=0.1, failure_rate_min_sends=10, rate_limit_per_minute=20
    )
    await advance_broadcasts(runtime)
    async with runtime.sessions() as session, session.begin():  # the provider refused 3 of the first 20
        for message in (await broadcast_messages(runtime, broadcast_id))[:3]:
            await session.exec(sa.update(Message).where(Message.id == message.id).values(status=MessageStatus.failed))
    await WorkerLoop(runtime).drain()
    runtime.clock.advance(timedelta(seconds=61))
    await advance_broadcasts(runtime)
    broadcast = await state_of(runtime, broadcast_id)
    assert broadcast.state == "paused" and broadcast.state_reason == "failure rate 3/20 above 0.1"
    assert len(await broadcast_messages(runtime, broadcast_id)) == 20  # no further batch


async def test_holdout_recipients_get_a_skipped_message_and_the_same_group_as_the_preview(runtime):
    users = await add_customers(runtime, 50)
    broadcast_id = await scheduled(runtime, user_ids=users, holdout=0.3)
    await advance_broadcasts(runtime)
    held = {u for u in users if in_holdout(f"broadcast:{broadcast_id}", u, 30)}
    async with runtime.sessions() as session:
        rows = (
            await session.exec(
                sa.select(Customer.user_id, Message.status, Message.status_reason, BroadcastRecipient.holdout)
                .join(Message, Message.customer_id == Customer.id)
                .join(BroadcastRecipient, BroadcastRecipient.customer_id == Customer.id)
            )
        ).all()
    assert 0 < len(held) < 50
    assert {
        u for u, status, reason, holdout in rows if status == MessageStatus.skipped and reason == "holdout group"
    } == held
    assert {u for u, *_, holdout in rows if holdout} == held


async def test_a_segment_audience_is_its_members_when_the_schedule_arrives(runtime):
    await add_customers(runtime, 4)
    async with runtime.sessions() as session, session.begin():
        ids = dict((await session.exec(sa.select(Customer.user_id, Customer.id))).all())
        session.add_all(
            SegmentMember(segment_id="french-buyers", customer_id=ids[u], entered_at=START) for u in ("c1", "c3")
        )
    broadcast_id = await scheduled(runtime, audience={"segment": "french-buyers"})
    await advance_broadcasts(runtime)
    messages = await broadcast_messages(runtime, broadcast_id)
    assert sorted(m.customer_id for m in messages) == sorted([ids["c1"], ids["c3"]])


async def test_a_customer_the_channel_cannot_reach_gets_the_fallback_channel(runtime):
    async with runtime.sessions() as session, session.begin():
        await ingest(
            session,
            runtime,
            [
                IdentifyCall(userId="texter", traits={"phone": "+33612340001", "sms_opt_in": True}),
                IdentifyCall(userId="mailer", traits={"email": "mailer@example.com"}),  # no phone
            ],
        )
    broadcast_id = await scheduled(runtime, user_ids=["texter", "mailer"], fallback="email")
    await advance_broadcasts(runtime)
    await WorkerLoop(runtime).drain()
    messages = {m.to_address: m for m in await broadcast_messages(runtime, broadcast_id)}
    assert {address: (m.channel, m.status) for address, m in messages.items()} == {
        "+33612340001": ("sms", MessageStatus.sent),
        "mailer@example.com": ("email", MessageStatus.sent),
    }


class TwoAtOnceSms(LocalSmsAdapter):
    """Sends two at a time: what one dispatch round would claim, and so, before, all that a
    batch handed off (the rest went through the dispatch claim)."""

    max_concurrent_sends = 2


async def test_a_feeding_round_sends_its_whole_batch_itself(runtime):
    sms = TwoAtOnceSms()
    runtime.channels = ChannelRegistry({**{a.channel: a for a in runtime.channels}, Channel.sms: sms})
    users = await add_customers(runtime, 5)
    broadcast_id = await scheduled(runtime, user_ids=users)

    fed = await advance_broadcasts(runtime, hand_off=True)

    assert (fed.materialized, fed.sent) == (5, 5)
    assert {m.status for m in await broadcast_messages(runtime, broadcast_id)} == {MessageStatus.sent}
    assert len(sms.outbox) == 5


async def test_a_feeding_round_hands_off_what_the_send_rate_allows_and_queues_the_rest(runtime, monkeypatch):
    frozen = time.time()  # the moving window's clock stands still: one budget of 2 for the round
    monkeypatch.setattr(limits.aio.storage.memory, "time", SimpleNamespace(time=lambda: frozen))
    runtime.rate_limiter = SendRateLimiter({Channel.sms: 2})
    sms = runtime.channels.for_channel(Channel.sms)
    users = await add_customers(runtime, 5)
    broadcast_id = await scheduled(runtime, user_ids=users)

    fed = await advance_broadcasts(runtime, hand_off=True)

    assert (fed.materialized, fed.sent) == (5, 2)
    statuses = sorted(m.status for m in await broadcast_messages(runtime, broadcast_id))
    assert statuses == [MessageStatus.queued] * 3 + [MessageStatus.sent] * 2
    assert all(m.attempts == 0 for m in await broadcast_messages(runtime, broadcast_id) if m.status == "queued")
    assert len(sms.outbox) == 2
    runtime.rate_limiter = SendRateLimiter({})  # the rate lifted: dispatch sends the rest
    await WorkerLoop(runtime).drain()
    assert len(sms.outbox) == 5 and len({m.send_key for m in sms.outbox}) == 5
    assert {m.status for m in await broadcast_messages(runtime, broadcast_id)} == {MessageStatus.sent}


async def test_a_handed_off_message_still_yields_its_capped_slot_to_a_higher_priority_send(runtime, tmp_path):
    caps = tmp_path / "frequency.yaml"
    caps.write_text("caps:\n  sms: {per_day: 1}\n")
    runtime.frequency = load_frequency_policy(caps)
    users = await add_customers(runtime, 2)
    async with runtime.sessions() as session, session.begin():
        first = (await session.exec(sa.select(Customer).where(Customer.user_id == users[0]))).scalar_one()
        vip = Message(
            send_key="test:vip-offer",
            customer_id=first.id,
            journey_id="vip-offer",
            step_id="send",
            channel="sms",
            to_address=first.phone,
            body="VIP offer tonight",
            marketing=True,
            priority=5,
            status=MessageStatus.queued,
            next_attempt_at=START + 2 * HOUR,  # later the same evening in Paris
            created_at=START,
            updated_at=START,
        )
        session.add(vip)
        await session.flush()
        vip_id = vip.id
    broadcast_id = await scheduled(runtime, user_ids=users, priority=0)

    fed = await advance_broadcasts(runtime, hand_off=True)

    by_customer = {m.customer_id: m for m in await broadcast_messages(runtime, broadcast_id)}
    assert fed.sent == 1
    assert by_customer[first.id].status == MessageStatus.skipped
    assert (
        by_customer[first.id].status_reason == f"frequency_cap: sms per_day 1 (yields to message {vip_id}, priority 5)"
    )
    assert [m.status for cid, m in by_customer.items() if cid != first.id] == [MessageStatus.sent]


async def test_one_recipients_bad_data_fails_their_message_only(runtime):
    users = await add_customers(runtime, 3, divisor=4)
    async with runtime.sessions() as session, session.begin():
        await ingest(session, runtime, [IdentifyCall(userId=users[1], traits={"divisor": 0})])
    broadcast_id = await scheduled(runtime, user_ids=users, vars={"discount_code": "{{ 100 // customer.divisor }}"})

    await advance_broadcasts(runtime, hand_off=True)
    await WorkerLoop(runtime).drain()

    messages = {m.customer_id: m for m in await broadcast_messages(runtime, broadcast_id)}
    async with runtime.sessions() as session:
        ids = dict((await session.exec(sa.select(Customer.user_id, Customer.id))).all())
    broken = messages.pop(ids[users[1]])
    assert broken.status == MessageStatus.failed and "ZeroDivisionError" in broken.status_reason
    assert [(m.status, "code 25" in m.body) for m in messages.values()] == [(MessageStatus.sent, True)] * 2


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_batch_of_due_recipients_is_the_first_rows_of_an_index_not_a_sort(runtime):
    """With `due_at` alone in the index, each batch sorted every recipient still due: 95 ms a
    batch at a million, a quadratic send. The index ends in customer_id, the order's last key."""
    await scheduled(runtime, user_ids=await add_customers(runtime, 3))
    with captured(runtime.engine, "SELECT broadcast_recipients.customer_id") as statements:
        await advance_broadcasts(runtime)
    due = next(s for s in statements if "ORDER BY" in s[0])
    plan = await plan_of(runtime.engine, *due, priced_out=("enable_seqscan", "enable_bitmapscan"))
    assert "ix_broadcast_recipients_due" in plan and "Sort" not in plan, plan
