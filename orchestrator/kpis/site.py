"""Website KPIs: visits counted per day into `site_daily`, and read back per group.

Counts (docs/website-kpis.md; ratios None when their denominator is 0):
- visits; visitors: distinct visitors within each (day, channel, journey, broadcast,
  source) cell, summed over cells: a visitor seen on two days, or from two sources, counts
  once for each (exact distinct counts over months of visits would not be a rollup read)
- bounces: one-page visits; pages: views in the visits; seconds: their total duration
- converted: visits an `Order Completed` converted (`orchestrator.kpis.visits`)
- site conversion rate = converted / visits × 100; bounce rate = bounces / visits × 100;
  average time on site = seconds / visits (a bounce counts, as 0 s); pages per visit =
  pages / visits

A range's whole UTC days are read from `site_daily`; the parts of days at either end are
counted from `visits` by the same aggregate, so `from`/`to` need not be midnights.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.kpis.formulas import percent, ratio
from orchestrator.kpis.rollup import within_days
from orchestrator.kpis.scope import calendar_day, counting, day_text, split_by_whole_days, without_jit
from orchestrator.storage.kpi_models import SiteDailyCell, Visit

SITE_KEY_COLUMNS = ["day", "channel", "journey_id", "broadcast_id", "source"]
SITE_MEASURES = ["visits", "visitors", "bounces", "pages", "seconds", "converted"]
# group_by / filter name → column (the same in `visits` and `site_daily`)
DIMENSIONS = {
    "channel": "channel",
    "journey": "journey_id",
    "broadcast": "broadcast_id",
    "source": "source",
    "day": "day",
}
visits, daily = Visit.__table__, SiteDailyCell.__table__


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


def site_cells(dialect: str, days: set[date] | None = None, conditions: list | None = None) -> sa.Select:
    """Visits aggregated per day and cell key: what `site_daily` holds for `days` (all when None)."""
    v = visits.c
    where = list(conditions or []) + ([] if days is None else [within_days(v.started_at, days)])
    day = calendar_day(v.started_at, dialect).label("day")
    return (
        sa.select(
            day,
            v.channel,
            v.journey_id,
            v.broadcast_id,
            v.source,
            sa.func.count().label("visits"),
            sa.func.count(sa.distinct(v.visitor)).label("visitors"),
            counting(v.pages == 1).label("bounces"),
            sa.func.coalesce(sa.func.sum(v.pages), 0).label("pages"),
            sa.func.coalesce(sa.func.sum(v.seconds), 0).label("seconds"),
            counting(v.converted_at.is_not(None)).label("converted"),
        )
        .where(*where)
        .group_by(day, v.channel, v.journey_id, v.broadcast_id, v.source)
    )


def site_row(group: dict[str, Any], n: dict[str, int]) -> dict[str, Any]:
    return {
        **group,
        **n,
        "conversion_rate": percent(n["converted"], n["visits"]),
        "bounce_rate": percent(n["bounces"], n["visits"]),
        "average_time_on_site": ratio(n["seconds"], n["visits"], 1),
        "pages_per_visit": ratio(n["pages"], n["visits"], 2),
    }


async def site_kpis(session: AsyncSession, scope: SiteScope) -> list[dict[str, Any]]:
    await without_jit(session)
    dialect = session.get_bind().dialect.name
    whole, edges = split_by_whole_days(scope.since, scope.until)
    parts = []
    if whole is not None:
        first, end = whole
        d = daily.c
        bounds = ([] if first is None else [d.day >= first.date()]) + ([] if end is None else [d.day < end.date()])
        parts.append(
            sa.select(*(d[c] for c in SITE_KEY_COLUMNS), *(d[m] for m in SITE_MEASURES)).where(
                *bounds, *(d[c] == value for c, value in scope.filters().items())
            )
        )
    v = visits.c
    for start, end in edges:
        conditions = [v.started_at >= start, v.started_at < end]
        conditions += [v[c] == value for c, value in scope.filters().items()]
        parts.append(site_cells(dialect, conditions=conditions))
    columns = [DIMENSIONS[name] for name in scope.group_by]
    cells = sa.union_all(*parts).subquery("cells") if len(parts) > 1 else parts[0].subquery("cells")
    query = sa.select(
        *(cells.c[c] for c in columns), *(sa.func.coalesce(sa.func.sum(cells.c[m]), 0).label(m) for m in SITE_MEASURES)
    ).group_by(*(cells.c[c] for c in columns))
    rows = (await session.exec(query.order_by(*(cells.c[c] for c in columns)))).all()
    if not rows and not columns:
        rows = [tuple(0 for _ in SITE_MEASURES)]
    result = []
    for row in rows:
        keys, numbers = row[: len(columns)], row[len(columns) :]
        group = {name: (day_text(value) if name == "day" else value) for name, value in zip(scope.group_by, keys)}
        result.append(site_row(group, {m: int(value or 0) for m, value in zip(SITE_MEASURES, numbers)}))
    return result
