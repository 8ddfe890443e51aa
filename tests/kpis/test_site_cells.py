"""The website rollups counted from hand-built visits: one cell per hour (day) and source,
the day's cells the merge of its hours', and only the days asked for counted again."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from orchestrator.clock import utc
from orchestrator.kpis.distinct import DistinctVisitors
from orchestrator.kpis.site_cells import recount_site_days
from orchestrator.storage.kpi_models import SiteDailyCell, SiteHourlyCell, Visit

D0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
SOURCES = (  # (channel, journey, broadcast, source)
    ("sms", "welcome", "", "orchestrator"),
    ("direct", "", "", "direct"),
    ("referral", "", "", "www.google.com"),
    ("email", "broadcast:spring", "spring", "orchestrator"),
)


def hand_built_visits() -> list[dict]:
    """116 visits over three UTC days, one every 37 minutes and a few seconds (the 61st starts
    on an hour exactly, 13:00:00 of the second day), of 23 visitors who come back on every day
    and through every source; 1 to 4 pages, every 5th converted."""
    rows = []
    for i in range(116):
        started_at = D0 + timedelta(minutes=37 * i, seconds=i * 13 % 60)
        pages = 1 + i % 4
        seconds = (pages - 1) * 60 + i % 7
        channel, journey, broadcast, source = SOURCES[i % 4]
        rows.append(
            dict(
                visitor=f"a:v{i % 23}",
                started_at=started_at,
                ended_at=started_at + timedelta(seconds=seconds),
                seconds=seconds,
                pages=pages,
                channel=channel,
                journey_id=journey,
                broadcast_id=broadcast,
                source=source,
                converted_at=started_at + timedelta(minutes=5) if i % 5 == 0 else None,
            )
        )
    return rows


async def store_and_count(runtime, rows: list[dict]) -> None:
    async with runtime.sessions() as session, session.begin():
        await session.exec(sa.insert(Visit.__table__).values(rows))
        await recount_site_days(session, None)


async def cells(runtime, model) -> list:
    async with runtime.sessions() as session:
        return list((await session.exec(sa.select(model))).scalars().all())


async def test_each_hour_and_day_of_a_source_is_one_cell_and_a_day_merges_its_hours(runtime):
    rows = hand_built_visits()
    await store_and_count(runtime, rows)
    hours, days = await cells(runtime, SiteHourlyCell), await cells(runtime, SiteDailyCell)

    expected_hours: dict[tuple, list[dict]] = {}
    for row in rows:
        key = (row["started_at"].replace(minute=0, second=0), row["channel"], row["source"])
        expected_hours.setdefault(key, []).append(row)
    assert {(utc(c.hour), c.channel, c.source): c.visits for c in hours} == {
        key: len(found) for key, found in expected_hours.items()
    }
    at_13 = next(c for c in hours if utc(c.hour) == D0 + timedelta(days=1, hours=13))
    assert (at_13.visits, at_13.channel) == (1, "sms")  # the visit at 13:00:00 sharp is that hour's

    assert sorted((c.day, c.channel) for c in days) == sorted({(r["started_at"].date(), r["channel"]) for r in rows})
    for day in days:
        mine = [r for r in rows if r["started_at"].date() == day.day and r["channel"] == day.channel]
        assert (day.visits, day.bounces, day.pages, day.seconds, day.converted) == (
            len(mine),
            sum(r["pages"] == 1 for r in mine),
            sum(r["pages"] for r in mine),
            sum(r["seconds"] for r in mine),
            sum(r["converted_at"] is not None for r in mine),
        )
        assert day.visitor_sketch == DistinctVisitors.of(r["visitor"] for r in mine).to_bytes()
        its_hours = [c for c in hours if utc(c.hour).date() == day.day and c.channel == day.channel]
        assert sum(c.visits for c in its_hours) == day.visits


async def test_counting_some_days_again_leaves_the_others_as_they_are(runtime):
    await store_and_count(runtime, hand_built_visits())
    second_day = (D0 + timedelta(days=1)).date()
    async with runtime.sessions() as session, session.begin():
        await session.exec(sa.delete(Visit.__table__).where(Visit.started_at >= D0 + timedelta(days=1)))
        await recount_site_days(session, {second_day})
    days = {c.day for c in await cells(runtime, SiteDailyCell)}
    hours = {utc(c.hour).date() for c in await cells(runtime, SiteHourlyCell)}
    # the second day had no visits left, so it has no cells; the third was not asked for
    assert days == hours == {D0.date(), (D0 + timedelta(days=2)).date()}
