"""The worker loop: APScheduler interval jobs that drain due work, reconcile sends, keep
the KPI rollups, the visits and segment memberships current.

APScheduler only paces the polling; all journey state lives in the database, so any number
of these loops (one per worker process) can run against one PostgreSQL. Reconciling
(asking providers about ambiguous sends, see engine/reconcile.py) is a job of its own, so
its provider requests never hold up a drain. The rollup refresh is serialized across
processes by the rollup itself (`orchestrator.kpis.rollup`), and costs a few index lookups
when nothing changed, so every worker may run it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from orchestrator.broadcasts.sending import advance_broadcasts
from orchestrator.engine.dispatch import dispatch_queued_messages, handoff_budget, send_claimed
from orchestrator.engine.frequency_caps import purge_old_slots
from orchestrator.engine.reconcile import Pacer, reconcile_round
from orchestrator.engine.worker import advance_due_enrollments
from orchestrator.kpis.rollup import refresh_rollups
from orchestrator.kpis.site_fold import refresh_visits
from orchestrator.reports.delivery import send_due_reports
from orchestrator.runtime import Runtime
from orchestrator.segments.refresh import refresh_segments

log = logging.getLogger("orchestrator.loop")

MAX_ROUNDS_PER_TICK = 1000  # bounds one tick so shutdown never waits on an endless backlog
# The most of a worker's time the KPI rollup refresh may take: a refresh that took 8 s (a day
# of a million sends counted again) waits 80 s before the next, so KPIs lag a little more
# during a very large send instead of the send slowing down for them.
ROLLUP_SHARE_OF_TIME = 0.1
RECENT_REFRESH_SHARE = 0.9  # of the refresh interval: see `rollup_tick`
PURGE_CAP_SLOTS_SECONDS = 3600.0  # frequency-cap slots of long-past periods: a cheap indexed delete


class WorkerLoop:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = asyncio.Lock()
        self._refreshing = asyncio.Lock()
        self._segments = asyncio.Lock()
        self._folding = asyncio.Lock()
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task] = set()  # scheduled jobs under way, awaited by stop()
        self._pacer = Pacer(runtime.settings.reconcile_lookups_per_second)
        self._next_rollup = 0.0  # time.monotonic() before which the rollup job skips its turn

    async def drain(self) -> int:
        """Run due enrollments and dispatch queued messages until neither has work."""
        done = 0
        async with self._lock:
            for _ in range(MAX_ROUNDS_PER_TICK):
                advanced, claimed = await advance_due_enrollments(
                    self.runtime, claim=await handoff_budget(self.runtime)
                )
                dispatched = await send_claimed(self.runtime, claimed) + await dispatch_queued_messages(self.runtime)
                done += advanced + dispatched
                if not advanced and not dispatched:
                    break
        return done

    async def run_due(self) -> int:
        """What is due now, broadcasts first: a simulated clock stopping at a due time runs this,
        so a broadcast's messages are queued before the drain decides frequency caps between
        them and the journeys' sends due at the same moment (priority, not arrival, decides)."""
        fed = await self.feed_broadcasts()
        return fed + await self.drain()

    async def reconcile(self) -> None:
        """One reconcile round (bounded and paced; see engine/reconcile.py)."""
        try:
            report = await reconcile_round(self.runtime, self._pacer)
        except Exception:  # a database or provider hiccup: the next round retries
            log.exception("reconcile round failed")
            return
        if report:
            log.info("reconciled: %s", report)
        if report.marked_unknown:
            log.warning("%d interrupted sends marked unknown (their provider cannot be asked)", report.marked_unknown)

    async def refresh_kpi_rollups(self) -> None:
        """Bring the daily KPI rollups and the visits up to date. `GET /v1/kpis` only reads them; these
        jobs (and the simulated clock's advance) are what moves them."""
        await self.refresh_campaign_rollups()
        await self.fold_visits()

    async def refresh_campaign_rollups(self, unless_refreshed_within: timedelta | None = None) -> None:
        async with self._refreshing:
            await refresh_rollups(self.runtime, unless_refreshed_within=unless_refreshed_within)

    async def fold_visits(self) -> None:
        """Page calls into visits (website KPIs): a job of its own, so the first fold after an
        upgrade (every page call already stored) never holds up the campaign rollups."""
        async with self._folding:
            await refresh_visits(self.runtime)

    async def tick(self) -> None:
        try:
            await self.drain()
        except Exception:  # a database hiccup must not kill the loop; the next tick retries
            log.exception("worker tick failed")

    async def send_reports(self) -> None:
        """Scheduled KPI reports: each period's once per recipient, whichever worker gets there first."""
        if not self.runtime.reports.reports:
            return
        try:
            await send_due_reports(self.runtime)
        except Exception:  # the next run retries; journeys never wait on reports
            log.exception("sending scheduled reports failed")

    async def feed_broadcasts(self) -> int:
        """Start broadcasts whose time came and make their due recipients' messages; returns
        how many it made. On a real clock each batch is sent at once, within the send rate
        (`hand_off`, see `advance_broadcasts`). Simulated time moves only through `run_due`,
        which must find every message queued when its drain weighs priorities: nothing is
        handed off there, whichever of it and this job gets to a due time first."""
        try:
            return (await advance_broadcasts(self.runtime, hand_off=not self.runtime.clock.simulated)).materialized
        except Exception:  # as for `tick`: the next run retries; a batch commits whole or not at all
            log.exception("broadcast round failed")
            return 0

    async def refresh_segments(self) -> None:
        """Segment membership: customers with new events, and whole segments when a sweep is due
        (orchestrator/segments/refresh.py); each segment is locked by one worker at a time."""
        if not self.runtime.segments.segments:
            return
        try:
            async with self._segments:  # the scheduled job and a clock advance, one at a time
                await refresh_segments(self.runtime)
        except Exception:  # the next round starts from the same watermarks
            log.exception("refreshing segments failed")

    async def rollup_tick(self) -> None:
        """The scheduled refresh, every `kpi_rollup_refresh_seconds`, or less often when a
        refresh takes more than ROLLUP_SHARE_OF_TIME of that (see docs/kpis.md)."""
        started = time.monotonic()
        if started < self._next_rollup:
            return
        # Another worker's refresh within most of an interval stands for this one: with N
        # workers the rollups are counted about once per interval, not N times. Not on a
        # simulated clock, which stands still between advances: every refresh would be recent.
        interval = timedelta(seconds=self.runtime.settings.kpi_rollup_refresh_seconds)
        recently = None if self.runtime.clock.simulated else interval * RECENT_REFRESH_SHARE
        try:
            await self.refresh_campaign_rollups(unless_refreshed_within=recently)
        except Exception:  # as for `tick`: the next interval tries again
            log.exception("KPI rollup refresh failed")
        self._next_rollup = started + (time.monotonic() - started) / ROLLUP_SHARE_OF_TIME

    async def visits_tick(self) -> None:
        try:
            await self.fold_visits()
        except Exception:  # as for `tick`: the next interval tries again
            log.exception("visits fold failed")

    async def purge_cap_slots(self) -> None:
        """Frequency-cap slots of periods over two weeks old: nothing reads them any more."""
        try:
            async with self.runtime.sessions() as session, session.begin():
                purged = await purge_old_slots(session, self.runtime.clock.now())
        except Exception:  # the next run tries again; sends never wait on this
            log.exception("purging old frequency-cap slots failed")
            return
        if purged:
            log.info("purged %d frequency-cap slots of past periods", purged)

    def start(self) -> None:
        self._scheduler = AsyncIOScheduler()
        # Drain, rollups and reports at once, then every interval: a worker started into a backlog (a deploy, a
        # restart after a crash) would otherwise sit idle for its first interval, and the
        # KPIs would show figures as old as the last worker's final refresh.
        started = datetime.now(timezone.utc)
        settings = self.runtime.settings
        jobs = [  # (job, interval setting, id, run at start)
            (self.tick, settings.worker_poll_seconds, "drain-due-work", True),
            (self.rollup_tick, settings.kpi_rollup_refresh_seconds, "refresh-kpi-rollups", True),
            (self.visits_tick, settings.kpi_rollup_refresh_seconds, "fold-visits", True),
            (self.send_reports, settings.report_poll_seconds, "send-due-reports", True),
            (self.feed_broadcasts, settings.broadcast_poll_seconds, "feed-broadcasts", True),
            (self.refresh_segments, settings.segment_refresh_seconds, "refresh-segments", True),
            (self.reconcile, settings.reconcile_interval_seconds, "reconcile-sends", False),
            (self.purge_cap_slots, PURGE_CAP_SLOTS_SECONDS, "purge-cap-slots", False),
        ]
        for job, seconds, job_id, at_start in jobs:
            self._scheduler.add_job(
                self._tracked(job),
                "interval",
                seconds=seconds,
                max_instances=1,
                coalesce=True,
                id=job_id,
                **({"next_run_time": started} if at_start else {}),
            )
        self._scheduler.start()

    def _tracked(self, job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            task = asyncio.current_task()
            self._running.add(task)
            try:
                await job()
            finally:
                self._running.discard(task)

        return run

    async def stop(self) -> None:
        if self._scheduler:
            # The asyncio executor's shutdown cancels the jobs under way: a report, broadcast or
            # segment round would stop wherever it was. Pausing starts no new job and lets those
            # under way finish first.
            self._scheduler.pause()
            await asyncio.gather(*self._running, return_exceptions=True)
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        async with self._lock, self._refreshing, self._segments, self._folding:  # let a running tick or refresh finish
            pass
