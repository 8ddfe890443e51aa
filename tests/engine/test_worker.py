"""Advancing due enrollments: messages written already claimed for the worker that wrote them."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlmodel import select

from orchestrator.channels.base import Channel
from orchestrator.channels.local import LocalSmsAdapter
from orchestrator.channels.registry import ChannelRegistry
from orchestrator.engine.dispatch import dispatch_queued_messages, handoff_budget, send_claimed
from orchestrator.engine.loop import WorkerLoop
from orchestrator.engine.worker import advance_due_enrollments, run_due_enrollments
from orchestrator.events.ingest import ingest
from orchestrator.events.schemas import IdentifyCall, TrackCall
from orchestrator.storage.models import Customer, Enrollment, Message


async def abandon_carts(runtime, *user_ids: str) -> None:
    calls = []
    for n, user_id in enumerate(user_ids):
        calls += [
            IdentifyCall(userId=user_id, traits={"phone": f"+1415555{n:04d}", "sms_opt_in": True}),
            TrackCall(userId=user_id, event="Cart Abandoned"),
        ]
    async with runtime.sessions() as session, session.begin():
        await ingest(session, runtime, calls)
    runtime.clock.advance(timedelta(hours=1))
    await run_due_enrollments(runtime)  # the first step: the one-hour wait starts
    runtime.clock.advance(timedelta(hours=1))


async def stored_messages(runtime) -> dict[str, Message]:
    async with runtime.sessions() as session:
        return {m.send_key: m for m in (await session.exec(select(Message))).all()}


async def test_up_to_the_budget_of_new_messages_are_written_claimed_and_returned(runtime):
    await abandon_carts(runtime, "ann", "bob", "cyd")

    advanced, claimed = await advance_due_enrollments(runtime, claim={Channel.sms: 2, Channel.email: 5})

    assert advanced == 3
    stored = await stored_messages(runtime)
    assert sorted(m.status for m in stored.values()) == ["queued", "sending", "sending"]
    assert {m.send_key for m in claimed} == {k for k, m in stored.items() if m.status == "sending"}
    for message in claimed:
        row = stored[message.send_key]
        assert (message.id, message.attempts, row.attempts) == (row.id, 1, 1)
        assert row.sending_at is not None and "CART15-" in message.body and message.to_address == row.to_address
    [queued] = [m for m in stored.values() if m.status == "queued"]
    assert (queued.attempts, queued.sending_at) == (0, None)


async def test_without_a_budget_every_new_message_is_queued(runtime):
    await abandon_carts(runtime, "ann", "bob")

    advanced, claimed = await advance_due_enrollments(runtime)

    assert (advanced, claimed) == (2, [])
    assert {m.status for m in (await stored_messages(runtime)).values()} == {"queued"}


async def test_a_message_whose_send_key_exists_is_not_returned_so_never_sent_twice(runtime):
    await abandon_carts(runtime, "ann")
    async with runtime.sessions() as session, session.begin():
        # As if this step had run once already: its send key exists.
        enrollment = (await session.exec(select(Enrollment))).one()
        customer = (await session.exec(select(Customer))).one()
        session.add(
            Message(
                send_key=f"{enrollment.id}:discount-sms",
                enrollment_id=enrollment.id,
                customer_id=customer.id,
                channel="sms",
                status="sent",
                created_at=runtime.clock.now(),
                updated_at=runtime.clock.now(),
            )
        )

    advanced, claimed = await advance_due_enrollments(runtime, claim={Channel.sms: 10})

    assert (advanced, claimed) == (1, [])
    [message] = (await stored_messages(runtime)).values()
    assert message.status == "sent"


class NarrowSms(LocalSmsAdapter):
    """Sends three at a time, slowly enough for sends to overlap; remembers the most at once."""

    max_concurrent_sends = 3

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = self.most_in_flight = 0

    async def send(self, message):
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            return await super().send(message)
        finally:
            self.in_flight -= 1


async def test_a_round_claims_and_sends_what_the_adapter_sends_at_once(runtime):
    sms = NarrowSms()
    runtime.channels = ChannelRegistry({**{a.channel: a for a in runtime.channels}, Channel.sms: sms})
    await abandon_carts(runtime, *(f"c{n}" for n in range(8)))

    budget = await handoff_budget(runtime)
    assert budget[Channel.sms] == 3  # the adapter's own figure, not the batch size
    _, claimed = await advance_due_enrollments(runtime, claim=budget)
    assert len(claimed) == 3
    assert [m.status for m in (await stored_messages(runtime)).values()].count("sending") == 3

    assert await send_claimed(runtime, claimed) == 3
    await WorkerLoop(runtime).drain()  # the five queued, three at a time

    assert sms.most_in_flight == 3
    assert len(sms.outbox) == 8 and len({m.send_key for m in sms.outbox}) == 8
    assert {m.status for m in (await stored_messages(runtime)).values()} == {"sent"}


async def test_queued_messages_are_claimed_as_many_as_the_adapter_sends_at_once(runtime):
    sms = NarrowSms()
    runtime.channels = ChannelRegistry({**{a.channel: a for a in runtime.channels}, Channel.sms: sms})
    await abandon_carts(runtime, *(f"c{n}" for n in range(8)))
    await advance_due_enrollments(runtime)  # no budget: all eight queued

    assert await dispatch_queued_messages(runtime) == 3
    assert sorted(m.status for m in (await stored_messages(runtime)).values()) == ["queued"] * 5 + ["sent"] * 3
