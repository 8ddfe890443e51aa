"""Sent, delivered and failed messages per channel and time bucket: an hour or a day as the
clock reads in a chosen IANA time zone (the console overview's chart).

The figures are those of the KPI cells (`cells.py`): journey messages created in the
bucket; sent = `sent_at` set, delivered = `delivered_at` set, failed = failed or
undelivered. Buckets are computed here, in Python, as UTC instants (a day in Europe/Paris
starts at 23:00 or 22:00 UTC, a spring-forward day has 23 hours, an autumn one 25, and its
repeated hour is two buckets), so both databases count the same ranges:

- when every bucket starts on a UTC hour (any zone whose offset is whole hours), the counts
  come from `kpi_hourly`, the hourly rollup the worker keeps with the daily ones;
- otherwise (Asia/Kolkata, Australia/Adelaide, a range starting mid-hour) they are counted
  from the messages by quarter hour.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.clock import utc
from orchestrator.kpis.cells import FAILED_STATUSES
from orchestrator.kpis.scope import counting, messages, quarter_hour, utc_hour, without_jit
from orchestrator.storage.kpi_models import KpiHourlyCell

Granularity = Literal["hour", "day"]
MEASURES = ("sent", "delivered", "failed")
MAX_SPAN = {"hour": timedelta(days=62), "day": timedelta(days=3 * 366)}  # a few thousand buckets at most
_STEP = timedelta(minutes=15)  # every zone's offset is a whole number of quarter hours
hourly_table = KpiHourlyCell.__table__


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


def hourly_cells(dialect: str, conditions: list) -> sa.Select:
    """The `kpi_hourly` rows of the messages matching `conditions`."""
    return _counted(utc_hour(messages.c.created_at, dialect), conditions)


def _counted(moment, conditions: list) -> sa.Select:
    m = messages.c
    moment = moment.label("moment")
    return (
        sa.select(
            moment,
            m.journey_id,
            m.channel,
            counting(m.sent_at.is_not(None)).label("sent"),
            counting(m.delivered_at.is_not(None)).label("delivered"),
            counting(m.status.in_(FAILED_STATUSES)).label("failed"),
        )
        .where(m.journey_id.is_not(None), *conditions)
        .group_by(moment, m.journey_id, m.channel)
    )


def _on_whole_hours(spans: list[Bucket]) -> bool:
    return all(span.start.minute == span.start.second == span.start.microsecond == 0 for span in spans) and (
        not spans or spans[-1].end == spans[-1].end.replace(minute=0, second=0, microsecond=0)
    )


async def message_series(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    granularity: Granularity,
    zone: ZoneInfo,
    journey: str | None = None,
) -> tuple[list[Bucket], dict[str, dict[str, list[int]]]]:
    """(buckets, channel → measure → one count per bucket). Each row read is one UTC hour
    (from `kpi_hourly`, when every bucket starts on a UTC hour) or one quarter hour (counted
    from the messages: zones such as Asia/Kolkata, ranges that start mid-hour), put in its
    bucket here."""
    spans = buckets(since, until, granularity, zone)
    if _on_whole_hours(spans):
        c = hourly_table.c
        cells = (
            sa.select(c.hour.label("moment"), c.channel, *(c[name] for name in MEASURES))
            .where(c.hour >= since, c.hour < until, *([c.journey_id == journey] if journey else []))
            .subquery()
        )
    else:
        await without_jit(session)
        m = messages.c
        dialect = session.get_bind().dialect.name
        cells = _counted(
            quarter_hour(m.created_at, dialect),
            [m.created_at >= since, m.created_at < until, *([m.journey_id == journey] if journey else [])],
        ).subquery()
    key = [cells.c.moment, cells.c.channel]
    query = sa.select(*key, *(sa.func.sum(cells.c[name]) for name in MEASURES)).group_by(*key)
    starts = [span.start.timestamp() for span in spans]  # numbers: comparing aware datetimes is slow
    channels: dict[str, dict[str, list[int]]] = {}
    for moment, channel, *counts in (await session.exec(query)).all():
        # A quarter hour truncated to before `since` still holds only messages from `since`
        # on: the first bucket's.
        n = max(bisect_right(starts, utc(moment).timestamp()) - 1, 0)
        figures = channels.setdefault(channel, {name: [0] * len(spans) for name in MEASURES})
        for name, count in zip(MEASURES, counts):
            figures[name][n] += int(count or 0)
    return spans, dict(sorted(channels.items()))
