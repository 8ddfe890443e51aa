"""Journeys while the service runs: publishing new versions, reloading, pausing.

The database is the shared truth (`journey_versions`, `journey_states`, and for segments
`segment_definitions`); every process keeps a compiled catalog and refreshes it from there
every few seconds, so a reload or a pause through any API process reaches every worker. An
enrollment always finishes on the version it entered; new entrants get the current one. A
reload checks the journey and segment files together and publishes both or neither.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.broadcasts.as_journey import add_started_broadcasts
from orchestrator.journeys.loader import JourneyError, LoadReport
from orchestrator.segments.live import publish_segments, refresh_segment_catalog
from orchestrator.segments.loader import SegmentCatalog
from orchestrator.storage.models import Enrollment, JourneyState, JourneyVersion
from orchestrator.storage.queries import insert_ignoring_conflict, insert_many_ignoring_conflict
from orchestrator.vocabulary import EnrollmentStatus

log = logging.getLogger("orchestrator.journeys")


@dataclass
class ReloadResult:
    applied: bool
    errors: list[JourneyError] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)  # journey id → current version
    segments: dict[str, str] = field(default_factory=dict)  # segment id → current version


async def publish(session: AsyncSession, report: LoadReport, now) -> None:
    """Record every loaded version and make it current; journeys whose file is gone retire."""
    await insert_many_ignoring_conflict(
        session,
        JourneyVersion,
        [
            dict(journey_id=j.definition.id, version=j.version, source=j.source, source_path=str(j.path), loaded_at=now)
            for j in report.loaded
        ],
        ["journey_id", "version"],
    )
    loaded = {j.definition.id: j.version for j in report.loaded}
    for journey_id, version in loaded.items():
        inserted = await insert_ignoring_conflict(
            session,
            JourneyState,
            dict(journey_id=journey_id, current_version=version, paused=False, updated_at=now),
            ["journey_id"],
        )
        if inserted is None:
            await session.exec(
                update(JourneyState)
                .where(JourneyState.journey_id == journey_id)
                .values(current_version=version, updated_at=now)
            )
    await session.exec(
        update(JourneyState)
        .where(col(JourneyState.journey_id).not_in(list(loaded) or [""]))
        .values(current_version=None, updated_at=now)
    )


async def refresh_catalog(runtime, force: bool = False) -> None:
    """Bring this process's catalog in line with the database (at most every few seconds)."""
    catalog = runtime.catalog
    if not force and time.monotonic() - catalog.refreshed_at < runtime.settings.catalog_refresh_seconds:
        return
    async with runtime.sessions() as session:
        states = (await session.exec(select(JourneyState))).all()
        missing = [
            (s.journey_id, s.current_version)
            for s in states
            if s.current_version and catalog.version(s.journey_id, s.current_version) is None
        ]
        for journey_id, version in missing:
            row = (
                await session.exec(
                    select(JourneyVersion).where(
                        JourneyVersion.journey_id == journey_id, JourneyVersion.version == version
                    )
                )
            ).first()
            if row is not None:
                catalog.add_version(journey_id, version, row.source)
        await add_started_broadcasts(session, catalog)
        await refresh_segment_catalog(session, runtime.segments)
    for state in states:
        catalog.set_current(state.journey_id, state.current_version)
    catalog.paused = {s.journey_id for s in states if s.paused}
    catalog.refreshed_at = time.monotonic()


async def load_missing_version(runtime, journey_id: str, version: str):
    """An enrollment on a version this process has not compiled yet (another process published it)."""
    async with runtime.sessions() as session:
        row = (
            await session.exec(
                select(JourneyVersion).where(JourneyVersion.journey_id == journey_id, JourneyVersion.version == version)
            )
        ).first()
    return runtime.catalog.add_version(journey_id, version, row.source) if row else None


async def apply_reload(runtime, report: LoadReport, segments: SegmentCatalog) -> ReloadResult:
    """Publish a reload whose every journey and segment file was checked; any error in any of
    them refuses it and nothing changes."""
    errors = [*report.errors, *segments.errors]
    if errors:
        for error in errors:
            log.error("reload refused: %s", error)
        return ReloadResult(applied=False, errors=errors)
    async with runtime.sessions() as session, session.begin():
        now = runtime.clock.now()
        await publish(session, report, now)
        await publish_segments(session, segments, now)
    for loaded in report.loaded:
        runtime.catalog.add_current(loaded)
    runtime.segments = segments
    await refresh_catalog(runtime, force=True)
    versions = {j.definition.id: j.version for j in report.loaded}
    segment_versions = {s.id: s.version for s in segments.segments.values()}
    log.info("journeys reloaded: %s", ", ".join(f"{k}@{v}" for k, v in versions.items()))
    log.info("segments reloaded: %s", ", ".join(f"{k}@{v}" for k, v in segment_versions.items()) or "none")
    return ReloadResult(applied=True, versions=versions, segments=segment_versions)


async def set_paused(runtime, journey_id: str, paused: bool) -> bool:
    """Pause: no new entrants, running enrollments hold at their next send. Resume wakes them."""
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        result = await session.exec(
            update(JourneyState).where(JourneyState.journey_id == journey_id).values(paused=paused, updated_at=now)
        )
        if result.rowcount == 0:
            return False
        if not paused:  # held enrollments are active with nothing to wait for: due now
            await session.exec(
                update(Enrollment)
                .where(
                    Enrollment.journey_id == journey_id,
                    Enrollment.status == EnrollmentStatus.active,
                    col(Enrollment.due_at).is_(None),
                    col(Enrollment.waiting_for).is_(None),
                )
                .values(due_at=now)
            )
    await refresh_catalog(runtime, force=True)
    return True
