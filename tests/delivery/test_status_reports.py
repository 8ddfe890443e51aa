"""Status callbacks applied a group at a time: the same effects as one at a time, on SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlmodel import select

from orchestrator.delivery.status_reports import StatusReport, apply_status_reports
from orchestrator.events.group_commit import GroupCommit
from orchestrator.storage.feedback_models import MessageStatusEvent
from orchestrator.storage.models import Customer, Message


async def make_messages(runtime, count: int, **values) -> list[int]:
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        ids = []
        for i in range(count):
            customer = Customer(user_id=f"u{i}", phone=f"+1415555{i:04d}", created_at=now, updated_at=now)
            session.add(customer)
            await session.flush()
            message = Message(
                send_key=f"e{i}:sms",
                customer_id=customer.id,
                channel="sms",
                provider="twilio",
                created_at=now,
                updated_at=now,
                **({"status": "sent", "provider_message_id": f"SM{i}"} | values),
            )
            session.add(message)
            await session.flush()
            ids.append(message.id)
        return ids


async def apply(runtime, reports):
    return await apply_status_reports(runtime, reports, source="twilio", inbox="twilio-status")


async def test_a_group_applies_each_report_once_and_says_what_became_of_it(runtime):
    first, second = await make_messages(runtime, 2)
    reports = [
        StatusReport("SM0", "sent"),
        StatusReport("SM0", "delivered"),
        StatusReport("SM0", "delivered"),  # a retry that arrived with the original: a replay
        StatusReport("SM1", "undelivered", error_code="30003", reason="Twilio error 30003"),
        StatusReport("SM-nobody", "delivered"),
    ]

    outcomes = await apply(runtime, reports)
    again = await apply(runtime, [StatusReport("SM1", "undelivered")])

    assert [(o.message_id, o.applied) for o in outcomes] == [
        (first, True),
        (first, True),
        (first, False),
        (second, True),
        (None, False),
    ]
    assert (again[0].message_id, again[0].applied) == (second, False)
    async with runtime.sessions() as session:
        statuses = {m.id: (m.status, m.error_code, m.status_reason) for m in (await session.exec(select(Message)))}
        history = Counter((await session.exec(select(MessageStatusEvent.message_id))).all())
    assert statuses == {first: ("delivered", None, None), second: ("undelivered", "30003", "Twilio error 30003")}
    assert history == {first: 2, second: 1}


async def test_a_message_whose_sid_was_never_stored_is_found_by_its_send_key(runtime):
    (message_id,) = await make_messages(runtime, 1, provider_message_id=None, status="unknown")

    (outcome,) = await apply(runtime, [StatusReport("SMlate", "delivered", send_key="e0:sms")])

    async with runtime.sessions() as session:
        message = await session.get(Message, message_id)
    assert outcome.message_id == message_id and outcome.applied
    assert (message.status, message.provider_message_id) == ("delivered", "SMlate")


async def test_concurrent_groups_for_the_same_messages_all_commit(runtime):
    """Two committers lock overlapping messages: in id order, so neither waits on the other
    in a cycle, and every status lands once."""
    ids = await make_messages(runtime, 40)
    intake = GroupCommit(lambda reports: apply(runtime, reports), max_group=15, concurrency=2)
    reports = [StatusReport(f"SM{i}", status) for status in ("sent", "delivered") for i in reversed(range(40))]

    outcomes = await asyncio.gather(*(intake.submit(r) for r in reports))
    await intake.aclose()

    async with runtime.sessions() as session:
        statuses = Counter((await session.exec(select(Message.status).where(Message.id.in_(ids)))).all())
        history = len((await session.exec(select(MessageStatusEvent.id))).all())
    assert all(o.applied for o in outcomes)
    assert statuses == {"delivered": 40} and history == 80
