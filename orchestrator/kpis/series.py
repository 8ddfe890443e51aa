"""Sent, delivered and failed messages per channel and time bucket: an hour or a day as the
clock reads in a chosen IANA time zone (the console overview's chart).

The figures are those of the KPI cells (`cells.py`): journey messages created in the
bucket; sent = `sent_at` set, delivered = `delivered_at` set, failed = failed or
undelivered. Buckets are computed here, in Python, as UTC instants (a day in Europe/Paris
starts at 23:00 or 22:00 UTC, a spring-forward day has 23 hours, an autumn one 25, and its
repeated hour is two buckets), so both databases count the same ranges:

- UTC days over whole UTC days are summed from the `kpi_daily` rollup;
- any other bucket is counted from the messages, one index range per bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.kpis.cells import FAILED_STATUSES
from orchestrator.kpis.scope import counting, day_text, messages, start_of_day, without_jit
from orchestrator.storage.kpi_models import KpiDailyCell

Granularity = Literal["hour", "day"]
MEASURES = ("sent", "delivered", "failed")
MAX_SPAN = {"hour": timedelta(days=62), "day": timedelta(days=3 * 366)}  # a few thousand buckets at most
_STEP = timedelta(minutes=15)  # every zone's offset is a whole number of quarter hours
cells_table = KpiDailyCell.__table__


@dataclass(frozen=True)
class Bucket:
    start: datetime  # UTC
    end: datetime
    label: datetime  # the start as the zone's clock reads it


def buckets(since: datetime, until: datetime, granularity: Granularity, zone: ZoneInfo) -> list[Bucket]:
    """The hours or days of `zone` that [since, until) covers, clipped to it."""
    starts: list[datetime] = []
    if granularity == "day":
        day = since.astimezone(zone).date()
        while (start := datetime.combine(day, time(), zone).astimezone(timezone.utc)) < until:
            starts.append(start)
            day += timedelta(days=1)
    else:  # a new hour wherever the zone's clock shows one (its offset can change mid-range)
        moment, last = since.replace(minute=since.minute - since.minute % 15, second=0, microsecond=0), None
        while moment < until:
            local = moment.astimezone(zone)
            key = (local.replace(minute=0), local.utcoffset())
            if key != last:
                starts.append(moment)
                last = key
            moment += _STEP
    starts = [max(start, since) for start in starts]
    if starts:
        starts[0] = since
    ends = starts[1:] + [until]
    return [Bucket(s, e, s.astimezone(zone)) for s, e in zip(starts, ends) if s < e]


def _is_midnight(moment: datetime) -> bool:
    return moment == start_of_day(moment)


async def message_series(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    granularity: Granularity,
    zone: ZoneInfo,
    journey: str | None = None,
) -> tuple[list[Bucket], dict[str, dict[str, list[int]]]]:
    """(buckets, channel → measure → one count per bucket)."""
    spans = buckets(since, until, granularity, zone)
    if granularity == "day" and zone.key == "UTC" and _is_midnight(since) and _is_midnight(until):
        c = cells_table.c
        query = (
            sa.select(c.day, c.channel, *(sa.func.sum(c[name]).label(name) for name in MEASURES))
            .where(c.day >= since.date(), c.day < until.date(), *([c.journey_id == journey] if journey else []))
            .group_by(c.day, c.channel)
        )
        index = {span.start.date().isoformat(): n for n, span in enumerate(spans)}
        rows = [(index[day_text(row.day)], row) for row in (await session.exec(query)).all()]
    else:
        await without_jit(session)
        m = messages.c
        columns = [
            sa.column("bucket", sa.Integer),
            sa.column("start", m.created_at.type),
            sa.column("end", m.created_at.type),
        ]
        bounds = sa.values(*columns, name="buckets").data([(n, s.start, s.end) for n, s in enumerate(spans)]).cte()
        query = (
            sa.select(
                bounds.c.bucket,
                m.channel,
                counting(m.sent_at.is_not(None)).label("sent"),
                counting(m.delivered_at.is_not(None)).label("delivered"),
                counting(m.status.in_(FAILED_STATUSES)).label("failed"),
            )
            .select_from(messages.join(bounds, sa.and_(m.created_at >= bounds.c.start, m.created_at < bounds.c.end)))
            .where(m.journey_id.is_not(None), *([m.journey_id == journey] if journey else []))
            .group_by(bounds.c.bucket, m.channel)
        )
        rows = [(row.bucket, row) for row in (await session.exec(query)).all()] if spans else []
    channels: dict[str, dict[str, list[int]]] = {}
    for n, row in rows:
        figures = channels.setdefault(row.channel, {name: [0] * len(spans) for name in MEASURES})
        for name in MEASURES:
            figures[name][n] = int(getattr(row, name) or 0)
    return spans, dict(sorted(channels.items()))
