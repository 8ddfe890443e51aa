"""Visits counted into the website rollups, `site_hourly` and `site_daily`: one cell per UTC
hour (day) of start and (channel, journey, broadcast, source), its counts and its visitors'
sketch (`orchestrator.kpis.distinct`).

The fold (`orchestrator.kpis.site_fold`) counts again the days whose visits it changed, in
its own transaction, so readers see a day's old cells or its new ones. A day is counted
from its visits in one pass: each visit goes to its hour's cell, and a day's cell is the
merge of its hours' cells (the counts add up, the sketches merge without loss), so the two
tables always agree. The visits are streamed and counted a day at a time: memory is one
day's cells (at most 4 KiB of sketch each), whatever the table holds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.clock import utc
from orchestrator.kpis.distinct import DistinctVisitors
from orchestrator.kpis.rollup import Days, clear_days, clear_hours
from orchestrator.kpis.scope import calendar_day, day_text
from orchestrator.storage.kpi_models import SiteDailyCell, SiteHourlyCell, Visit

CELL_KEY = ("channel", "journey_id", "broadcast_id", "source")
SITE_MEASURES = ("visits", "bounces", "pages", "seconds", "converted")
ROWS_AT_ONCE = 10_000  # visits fetched per round trip while streaming a day
visits, daily, hourly = Visit.__table__, SiteDailyCell.__table__, SiteHourlyCell.__table__


@dataclass
class SiteCell:
    """Counts and visitors of a set of visits: a rollup cell, or a read's group of them."""

    visits: int = 0
    bounces: int = 0
    pages: int = 0
    seconds: int = 0
    converted: int = 0
    visitors: DistinctVisitors = field(default_factory=DistinctVisitors)

    def add_visit(self, visitor: str, pages: int, seconds: int, converted: bool) -> None:
        self.visits += 1
        self.bounces += pages == 1
        self.pages += pages
        self.seconds += seconds
        self.converted += bool(converted)
        self.visitors.add(visitor)

    def add_counted(self, counts: tuple[int, ...], sketch: bytes) -> None:
        """Add a stored cell: its `SITE_MEASURES` in order, and its visitor sketch."""
        self.visits += counts[0]
        self.bounces += counts[1]
        self.pages += counts[2]
        self.seconds += counts[3]
        self.converted += counts[4]
        self.visitors.merge_bytes(sketch)

    def counts(self) -> dict[str, int]:
        return {**{name: getattr(self, name) for name in SITE_MEASURES}, "visitors": self.visitors.count()}

    def stored(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in SITE_MEASURES}, "visitor_sketch": self.visitors.to_bytes()}

    def stored_counts(self) -> tuple[int, ...]:
        return tuple(getattr(self, name) for name in SITE_MEASURES)


async def recount_site_days(session: AsyncSession, days: Days) -> None:
    """Count `site_hourly` and `site_daily` again for `days` (None: every day) from the visits."""
    if days is not None and not days:
        return
    if days is None:
        await session.exec(sa.delete(hourly))
        await session.exec(sa.delete(daily))
        days = await _days_with_visits(session)
    else:
        await clear_hours(session, hourly, days)
        await clear_days(session, [daily], days)
    for day in sorted(days):
        await _count_day(session, day)


async def _days_with_visits(session: AsyncSession) -> set[date]:
    day = calendar_day(visits.c.started_at, session.get_bind().dialect.name)
    rows = (await session.exec(sa.select(day).group_by(day))).all()
    return {date.fromisoformat(day_text(row[0])) for row in rows}


async def _count_day(session: AsyncSession, day: date) -> None:
    v = visits.c
    start = datetime.combine(day, time(), timezone.utc)
    query = sa.select(
        v.started_at, *(v[name] for name in CELL_KEY), v.visitor, v.pages, v.seconds, v.converted_at.is_not(None)
    ).where(v.started_at >= start, v.started_at < start + timedelta(days=1))
    connection = await session.connection()
    hours: dict[tuple, SiteCell] = defaultdict(SiteCell)
    result = await connection.stream(query)
    async for rows in result.partitions(ROWS_AT_ONCE):
        for started_at, *key, visitor, pages, seconds, converted in rows:
            hour = utc(started_at).replace(minute=0, second=0, microsecond=0)
            hours[(hour, *key)].add_visit(visitor, pages, seconds, converted)
    if not hours:
        return
    hour_rows, days = [], defaultdict(SiteCell)
    for (hour, *key), cell in hours.items():
        row = {"hour": hour, **dict(zip(CELL_KEY, key)), **cell.stored()}
        hour_rows.append(row)
        days[tuple(key)].add_counted(cell.stored_counts(), row["visitor_sketch"])  # a day merges its hours
    # executemany: compiled once, however many cells
    await connection.execute(sa.insert(hourly), hour_rows)
    await connection.execute(
        sa.insert(daily), [{"day": day, **dict(zip(CELL_KEY, k)), **c.stored()} for k, c in days.items()]
    )
