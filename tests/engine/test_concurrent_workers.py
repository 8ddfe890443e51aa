"""Two workers on one PostgreSQL over thousands of due enrollments: each send happens once."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlmodel import func, select

from orchestrator.channels.base import Channel
from orchestrator.clock import SimulatedClock
from orchestrator.engine.loop import WorkerLoop
from orchestrator.events.ingest import ingest
from orchestrator.events.schemas import IdentifyCall, TrackCall
from orchestrator.startup import build_runtime
from orchestrator.storage.models import Message
from tests.conftest import START, _reset, make_settings

CUSTOMERS = 2000


@pytest.fixture
async def two_workers(postgres_database):
    await _reset(postgres_database)
    settings = make_settings(postgres_database, worker_batch_size=100)
    first = await build_runtime(settings, clock=SimulatedClock(START))
    second = await build_runtime(settings, clock=SimulatedClock(START))
    yield first, second
    await first.aclose()
    await second.aclose()


async def test_every_send_key_is_sent_exactly_once(two_workers):
    first, second = two_workers
    for start in range(0, CUSTOMERS, 500):
        calls = []
        for i in range(start, start + 500):
            calls.append(IdentifyCall(userId=f"c{i}", traits={"email": f"c{i}@example.com"}))
            calls.append(TrackCall(userId=f"c{i}", event="Signed Up", messageId=f"signup-{i}"))
        async with first.sessions() as session, session.begin():
            await ingest(session, first, calls)

    await asyncio.gather(WorkerLoop(first).drain(), WorkerLoop(second).drain())

    sent = [m.send_key for runtime in two_workers for m in runtime.channels.for_channel(Channel.email).outbox]
    duplicates = [key for key, times in Counter(sent).items() if times > 1]
    assert duplicates == []
    assert len(sent) == CUSTOMERS
    # Both workers really competed for the same rows.
    assert all(runtime.channels.for_channel(Channel.email).outbox for runtime in two_workers)
    async with first.sessions() as session:
        statuses = dict((await session.exec(select(Message.status, func.count()).group_by(Message.status))).all())
    assert statuses == {"sent": CUSTOMERS}
