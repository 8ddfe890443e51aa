"""The worker loop as the `worker` and `serve` commands run it: an APScheduler job."""

from __future__ import annotations

import asyncio

from orchestrator.channels.base import Channel
from orchestrator.clock import SimulatedClock
from orchestrator.engine.loop import WorkerLoop
from orchestrator.events.ingest import ingest
from orchestrator.events.schemas import IdentifyCall, TrackCall
from orchestrator.startup import build_runtime
from tests.conftest import START, _reset, make_settings


async def test_a_started_loop_drains_at_once_not_one_interval_later(database_url):
    await _reset(database_url)
    runtime = await build_runtime(make_settings(database_url, worker_poll_seconds=3600), clock=SimulatedClock(START))
    loop = WorkerLoop(runtime)
    try:
        async with runtime.sessions() as session, session.begin():
            await ingest(session, runtime, [IdentifyCall(userId="ann", traits={"email": "ann@example.com"}),
                                            TrackCall(userId="ann", event="Signed Up")])
        outbox = runtime.channels.for_channel(Channel.email).outbox
        loop.start()
        for _ in range(200):  # the first tick is due at start; the next only in an hour
            if outbox:
                break
            await asyncio.sleep(0.05)
        assert [message.to for message in outbox] == ["ann@example.com"]
    finally:
        await loop.stop()
        await runtime.aclose()
