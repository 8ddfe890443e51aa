"""The worker loop as the `worker` and `serve` commands run it: APScheduler jobs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from sqlmodel import func, select

from orchestrator.channels.base import Channel
from orchestrator.clock import Clock, SimulatedClock, utc
from orchestrator.config import Settings
from orchestrator.engine import loop as loop_module
from orchestrator.engine.loop import WorkerLoop
from orchestrator.events.ingest import ingest
from orchestrator.events.schemas import IdentifyCall, TrackCall
from orchestrator.startup import build_runtime
from orchestrator.storage.kpi_models import KpiEnrollmentCell, KpiRollupState
from tests.broadcasts.helpers import add_customers, broadcast_messages, scheduled
from tests.conftest import START, _reset, make_settings


async def test_a_started_loop_drains_at_once_not_one_interval_later(database_url, tmp_path):
    await _reset(database_url)
    # No scheduled reports (an empty reports_dir): their job, also due at start, e-mails
    # through the same outbox this test reads.
    settings = make_settings(database_url, worker_poll_seconds=3600, reports_dir=tmp_path)
    runtime = await build_runtime(settings, clock=SimulatedClock(START))
    loop = WorkerLoop(runtime)
    try:
        async with runtime.sessions() as session, session.begin():
            await ingest(
                session,
                runtime,
                [
                    IdentifyCall(userId="ann", traits={"email": "ann@example.com"}),
                    TrackCall(userId="ann", event="Signed Up"),
                ],
            )
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


@pytest.mark.parametrize(
    ("clock", "made_as"),
    [(Clock, "sent"), (lambda: SimulatedClock(START), "queued")],
    ids=["real-clock", "simulated-clock"],
)
async def test_the_broadcast_job_sends_what_it_makes_on_a_real_clock_and_only_queues_on_a_simulated_one(
    database_url, clock, made_as
):
    """A simulated clock's advance drains after feeding, and that drain must find every
    broadcast message still queued to weigh it against journey sends by priority."""
    await _reset(database_url)
    runtime = await build_runtime(make_settings(database_url), clock=clock())
    try:
        broadcast_id = await scheduled(runtime, user_ids=await add_customers(runtime, 4))
        assert await WorkerLoop(runtime).feed_broadcasts() == 4
        assert [m.status for m in await broadcast_messages(runtime, broadcast_id)] == [made_as] * 4
    finally:
        await runtime.aclose()


async def test_a_started_loop_refreshes_the_kpi_rollups_at_once_then_every_interval(database_url):
    await _reset(database_url)
    settings = make_settings(database_url, worker_poll_seconds=3600, kpi_rollup_refresh_seconds=1800)
    runtime = await build_runtime(settings, clock=SimulatedClock(START))
    loop = WorkerLoop(runtime)
    try:
        loop.start()
        job = loop._scheduler.get_job("refresh-kpi-rollups")
        assert job.trigger.interval == timedelta(seconds=1800)
        for _ in range(200):  # the first refresh is due at start; the next only in half an hour
            async with runtime.sessions() as session:
                watermark = (await session.exec(select(KpiRollupState.watermark))).first()
            if watermark is not None:
                break
            await asyncio.sleep(0.05)
        assert utc(watermark) == START  # the worker counted, at the engine clock's time
    finally:
        await loop.stop()
        await runtime.aclose()


async def test_a_slow_rollup_refresh_spaces_out_the_next_ones(runtime, monkeypatch):
    """A refresh may take at most a tenth of the worker's time: one that took 8 s (a day of
    a million sends counted again) is followed by the next only 80 s after it began."""
    now = [1000.0]
    monkeypatch.setattr(loop_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    loop = WorkerLoop(runtime)
    began: list[float] = []

    async def refresh_taking(seconds: float) -> None:
        began.append(now[0])
        now[0] += seconds

    loop.refresh_campaign_rollups = lambda **_: refresh_taking(8)
    for tick_at in (1000, 1030, 1060, 1090):  # the job's 30 s interval
        now[0] = tick_at
        await loop.rollup_tick()
    assert began == [1000, 1090]

    loop.refresh_campaign_rollups = lambda **_: refresh_taking(0.5)
    for tick_at in (1200, 1230, 1260):
        now[0] = tick_at
        await loop.rollup_tick()
    assert began == [1000, 1090, 1200, 1230, 1260]


class WallClockStandIn(SimulatedClock):
    """A clock the test moves, that the service takes for the wall clock (workers in production)."""

    simulated = False


async def test_workers_share_the_rollup_refresh_about_once_per_interval(runtime, monkeypatch):
    """A worker whose turn comes within most of an interval after another's refresh counts
    nothing: with N workers the rollups are counted about once per interval, not N times."""
    monkeypatch.setattr(loop_module, "time", SimpleNamespace(monotonic=lambda: 0.0))  # no spacing out here
    runtime.clock = WallClockStandIn(START)
    first, second = WorkerLoop(runtime), WorkerLoop(runtime)
    interval = timedelta(seconds=runtime.settings.kpi_rollup_refresh_seconds)

    async def sign_up(user: str) -> None:
        async with runtime.sessions() as session, session.begin():
            events = [
                IdentifyCall(userId=user, traits={"email": f"{user}@example.com"}),
                TrackCall(userId=user, event="Signed Up"),
            ]
            await ingest(session, runtime, events)

    async def refreshed_at():
        async with runtime.sessions() as session:
            return utc((await session.exec(select(KpiRollupState.refreshed_at))).one())

    await sign_up("ann")
    await first.rollup_tick()
    assert await refreshed_at() == START
    runtime.clock.advance(interval / 3)
    await sign_up("bob")  # a change to count, but the first worker counted a third of an interval ago
    await second.rollup_tick()
    assert await refreshed_at() == START
    runtime.clock.advance(interval * 2 / 3)
    await second.rollup_tick()
    assert await refreshed_at() == START + interval


async def test_on_a_simulated_clock_each_tick_refreshes_what_changed(runtime, monkeypatch):
    """Simulated time stands still between advances, so every refresh would look recent: the
    sharing between workers is off there, and a change made meanwhile is counted at the next tick."""
    monkeypatch.setattr(loop_module, "time", SimpleNamespace(monotonic=lambda: 0.0))
    loop = WorkerLoop(runtime)
    async with runtime.sessions() as session, session.begin():
        await ingest(session, runtime, [IdentifyCall(userId="ann", traits={"email": "ann@example.com"})])
        await ingest(session, runtime, [TrackCall(userId="ann", event="Signed Up")])
    await loop.rollup_tick()
    async with runtime.sessions() as session, session.begin():
        await ingest(session, runtime, [IdentifyCall(userId="bob", traits={"email": "bob@example.com"})])
        await ingest(session, runtime, [TrackCall(userId="bob", event="Signed Up")])
    await loop.rollup_tick()  # the same simulated moment
    async with runtime.sessions() as session:
        counted = (await session.exec(select(func.sum(KpiEnrollmentCell.enrollments)))).one()
    assert counted == 2


def test_the_refresh_interval_is_a_setting_that_must_be_positive(monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_KPI_ROLLUP_REFRESH_SECONDS", "5")
    assert Settings().kpi_rollup_refresh_seconds == 5
    assert Settings.model_fields["kpi_rollup_refresh_seconds"].default == 30
    with pytest.raises(ValidationError, match="kpi_rollup_refresh_seconds"):
        Settings(kpi_rollup_refresh_seconds=0)


async def test_stop_waits_for_a_job_already_running(database_url, tmp_path):
    """A report, broadcast or segment round under way when the worker is told to stop is
    finished before `stop()` returns, not left running against a runtime being closed."""
    await _reset(database_url)
    settings = make_settings(database_url, worker_poll_seconds=3600, reports_dir=tmp_path)
    runtime = await build_runtime(settings, clock=SimulatedClock(START))
    loop = WorkerLoop(runtime)
    started, release, finished = asyncio.Event(), asyncio.Event(), []

    async def a_long_report_round() -> None:
        started.set()
        await release.wait()
        finished.append(True)

    loop.send_reports = a_long_report_round  # the scheduler takes the job when it starts
    try:
        loop.start()
        await asyncio.wait_for(started.wait(), 10)
        stopping = asyncio.create_task(loop.stop())
        for _ in range(20):  # let stop() run as far as it can
            await asyncio.sleep(0)
        assert not stopping.done() and finished == []
        release.set()
        await asyncio.wait_for(stopping, 10)
        assert finished == [True]
    finally:
        release.set()
        await loop.stop()
        await runtime.aclose()
