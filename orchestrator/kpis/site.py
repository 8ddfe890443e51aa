"""Website KPIs: visits read back per group from the website rollups (`site_daily`,
`site_hourly`, counted by `orchestrator.kpis.site_cells`).

Counts (docs/website-kpis.md; ratios None when their denominator is 0):
- visits; visitors: distinct visitors over the whole range and group, merged from the
  cells' sketches (`orchestrator.kpis.distinct`): exact up to 512 visitors, estimated
  beyond (relative standard error 1.6 %)
- bounces: one-page visits; pages: views in the visits; seconds: their total duration
- converted: visits an `Order Completed` converted (`orchestrator.kpis.visits`)
- site conversion rate = converted / visits × 100; bounce rate = bounces / visits × 100;
  average time on site = seconds / visits (a bounce counts, as 0 s); pages per visit =
  pages / visits

A range's whole UTC days are read from `site_daily`, the whole hours of the part-days at
either end from `site_hourly`, and only the minutes left at either end from `visits`
(a visitor there hashed as the fold hashes it), so `from`/`to` need not be midnights or
hours, and the figures are the same as counting every visit in the range.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.kpis.formulas import percent, ratio
from orchestrator.kpis.scope import calendar_day, day_text, split_by_whole_days, split_by_whole_hours, without_jit
from orchestrator.kpis.site_cells import SITE_MEASURES, SiteCell
from orchestrator.storage.kpi_models import SiteDailyCell, SiteHourlyCell, Visit

# group_by / filter name → column (the same in `visits` and both rollups; `day` is computed
# from `hour` and `started_at`)
DIMENSIONS = {
    "channel": "channel",
    "journey": "journey_id",
    "broadcast": "broadcast_id",
    "source": "source",
    "day": "day",
}
visits, daily, hourly = Visit.__table__, SiteDailyCell.__table__, SiteHourlyCell.__table__


@dataclass(frozen=True)
class SiteScope:
    channel: str | None = None
    journey: str | None = None
    broadcast: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    group_by: tuple[str, ...] = ()

    def filters(self) -> dict[str, str]:
        return {
            DIMENSIONS[name]: value
            for name in ("channel", "journey", "broadcast", "source")
            if (value := getattr(self, name))
        }


def site_row(group: dict[str, Any], n: dict[str, int]) -> dict[str, Any]:
    return {
        **group,
        **n,
        "conversion_rate": percent(n["converted"], n["visits"]),
        "bounce_rate": percent(n["bounces"], n["visits"]),
        "average_time_on_site": ratio(n["seconds"], n["visits"], 1),
        "pages_per_visit": ratio(n["pages"], n["visits"], 2),
    }


def _spanning(column, spans: list[tuple[datetime, datetime]]):
    return sa.or_(*(sa.and_(column >= start, column < end) for start, end in spans))


async def site_kpis(session: AsyncSession, scope: SiteScope) -> list[dict[str, Any]]:
    await without_jit(session)
    dialect = session.get_bind().dialect.name
    whole_days, day_edges = split_by_whole_days(scope.since, scope.until)
    whole_hours, minutes = [], []
    for start, end in day_edges:
        hours, edges = split_by_whole_hours(start, end)
        whole_hours += [] if hours is None else [hours]
        minutes += edges

    def keyed(table: sa.Table, day) -> tuple[list, list]:
        """The group's columns, and the conditions of the scope's filters, in `table`."""
        group = [day if name == "day" else table.c[DIMENSIONS[name]] for name in scope.group_by]
        return group, [table.c[column] == value for column, value in scope.filters().items()]

    parts = []  # one statement, so one snapshot: a fold committing meanwhile is seen whole or not at all
    no_visitor = sa.cast(sa.null(), visits.c.visitor.type)
    if whole_days is not None:
        first, end = whole_days
        d = daily.c
        bounds = ([] if first is None else [d.day >= first.date()]) + ([] if end is None else [d.day < end.date()])
        group, filters = keyed(daily, d.day)
        parts.append(
            sa.select(*group, *(d[m] for m in SITE_MEASURES), d.visitor_sketch, no_visitor).where(*bounds, *filters)
        )
    if whole_hours:
        h = hourly.c
        group, filters = keyed(hourly, calendar_day(h.hour, dialect))
        parts.append(
            sa.select(*group, *(h[m] for m in SITE_MEASURES), h.visitor_sketch, no_visitor).where(
                _spanning(h.hour, whole_hours), *filters
            )
        )
    if minutes:  # one row a visit, its visitor to be hashed here
        v = visits.c
        group, filters = keyed(visits, calendar_day(v.started_at, dialect))
        one_visit = [sa.literal(1), sa.case((v.pages == 1, 1), else_=0), v.pages, v.seconds]
        one_visit.append(sa.case((v.converted_at.is_not(None), 1), else_=0))
        parts.append(
            sa.select(*group, *one_visit, sa.cast(sa.null(), daily.c.visitor_sketch.type), v.visitor).where(
                _spanning(v.started_at, minutes), *filters
            )
        )
    groups: dict[tuple, SiteCell] = defaultdict(SiteCell)
    width = len(scope.group_by)
    at_day = scope.group_by.index("day") if "day" in scope.group_by else None
    rows = (await session.exec(sa.union_all(*parts) if len(parts) > 1 else parts[0])).all() if parts else []
    for row in rows:
        key = tuple(row[:width])
        if at_day is not None:
            key = (*key[:at_day], day_text(key[at_day]), *key[at_day + 1 :])
        counts, sketch, visitor = row[width:-2], row[-2], row[-1]
        if visitor is None:
            groups[key].add_counted(counts, sketch)
        else:
            groups[key].add_visit(visitor, counts[2], counts[3], counts[4])
    if not groups and not width:
        groups[()] = SiteCell()
    return [site_row(dict(zip(scope.group_by, key)), groups[key].counts()) for key in sorted(groups)]
