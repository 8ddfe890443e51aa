"""Keep the daily KPI rollups current: `kpi_daily` and `kpi_daily_skips` (messages, by
day of creation), `kpi_hourly` (the overview's chart, by hour of creation), `kpi_enrollments_daily`, `kpi_funnel_steps` and `kpi_funnel_skips`
(enrollments and their sends, by day of entry: `orchestrator.kpis.funnel_cells`); with them,
`customer_orders` (order events folded per order, `orchestrator.kpis.orders`) and the
enrollment count deltas the database's triggers write (`orchestrator.kpis.enrollment_counts`).

The rollups are a cache; messages and enrollments stay the truth. `refresh_rollups`
brings them up to date and is cheap when nothing changed. The worker runs it (at start and
every `kpi_rollup_refresh_seconds`, see `orchestrator.engine.loop`); KPI reads never do, so
they write nothing and wait on no lock:

1. The first refresh (no watermark yet) counts every day.
2. Later ones find the days whose figures may have changed since the watermark: the
   creation days of messages updated since (status, delivery, opens: `updated_at`), of
   messages credited with an order since, and of messages a reply or opt-out since may be
   credited to; the entry days of enrollments that entered or reached their goal since.
3. Those days are deleted and counted again, in one transaction, so readers see either
   the old figures or the new ones.

The watermark is the engine clock's time when a refresh began; changes are looked for from
a margin before it, for transactions that wrote earlier timestamps but committed after we
looked. Refreshes are serialized: an in-process lock (SQLite must not see two writers
upgrade at once) and, on PostgreSQL, an advisory lock shared by all processes.

Rows written with timestamps older than the watermark (a backfill, a restored backup) go
unnoticed: `rebuild_rollups` counts everything again.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta, timezone
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.clock import utc
from orchestrator.kpis.cells import (
    ENROLLMENT_KEY,
    KEY_COLUMNS,
    MEASURES,
    RESPONSE_WINDOW,
    cell_totals,
    consents,
    conversions,
    enrollment_cells,
    enrollments,
    inbound,
    skip_cells,
)
from orchestrator.kpis.enrollment_counts import deltas_to_fold, fold_deltas, rebuild_enrollment_counts
from orchestrator.kpis.funnel_cells import STEP_KEY, STEP_MEASURES, step_cells, step_skip_cells
from orchestrator.kpis.orders import fold_orders, orders_received_since
from orchestrator.kpis.scope import calendar_day, day_text, messages, plus_days, without_jit
from orchestrator.kpis.series import MEASURES as SERIES_MEASURES
from orchestrator.kpis.series import hourly_cells
from orchestrator.runtime import Runtime
from orchestrator.storage.kpi_models import (
    KpiDailyCell,
    KpiDailySkip,
    KpiEnrollmentCell,
    KpiFunnelSkip,
    KpiFunnelStep,
    KpiHourlyCell,
    KpiRollupState,
)
from orchestrator.storage.queries import is_postgresql

ROLLUP = "kpis"
LATE_COMMIT_MARGIN = timedelta(minutes=5)
POSTGRES_ROLLUP_LOCK = 0x6B70692D726F6C6C  # "kpi-roll": any fixed number no other advisory lock uses
cells_table, skips_table = KpiDailyCell.__table__, KpiDailySkip.__table__
enrollment_table, state_table = KpiEnrollmentCell.__table__, KpiRollupState.__table__
funnel_steps_table, funnel_skips_table = KpiFunnelStep.__table__, KpiFunnelSkip.__table__
hourly_table = KpiHourlyCell.__table__
_process_locks: WeakKeyDictionary = WeakKeyDictionary()
Days = set[date] | None  # None: every day


def process_lock(runtime: Runtime) -> asyncio.Lock:
    return _process_locks.setdefault(runtime.engine.sync_engine, asyncio.Lock())


async def refresh_rollups(
    runtime: Runtime, *, rebuild: bool = False, unless_refreshed_within: timedelta | None = None
) -> tuple[Days, Days]:
    """Count again the days that may have changed: (message days, enrollment days) counted.
    When nothing changed this costs a few index lookups and writes nothing.

    `unless_refreshed_within`: do nothing when any process refreshed that recently (the
    worker loop's job: with several workers, about one refresh per interval between them)."""
    if not rebuild:
        async with runtime.sessions() as session:
            await without_jit(session)
            watermark, refreshed_at = await _read_state(session)
            if (
                refreshed_at is not None
                and unless_refreshed_within is not None
                and runtime.clock.now() - refreshed_at < unless_refreshed_within
            ):
                return set(), set()
            if (
                watermark is not None
                and not await _anything_changed(session, watermark - LATE_COMMIT_MARGIN)
                and not await orders_received_since(session, watermark - LATE_COMMIT_MARGIN)
                and not await deltas_to_fold(session)
            ):
                return set(), set()
    async with process_lock(runtime), runtime.sessions() as session, session.begin():
        if is_postgresql(session):
            await session.exec(sa.text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=POSTGRES_ROLLUP_LOCK))
        now = runtime.clock.now()  # before counting: what changes while we count is seen next time
        watermark = None if rebuild else await read_watermark(session)
        message_days, enrollment_days = (None, None) if watermark is None else await _changed(session, watermark)
        if watermark is not None:
            await without_jit(session)  # counting a few days again: compiling would take longer than that
        if message_days is None or message_days:
            await _recount_messages(session, message_days)
        if enrollment_days is None or enrollment_days:
            await _recount_enrollments(session, enrollment_days)
        await fold_orders(session, None if watermark is None else watermark - LATE_COMMIT_MARGIN)
        if rebuild:
            await rebuild_enrollment_counts(session)
        else:
            await fold_deltas(session)
        await save_watermark(session, now)
        return message_days, enrollment_days


async def rebuild_rollups(runtime: Runtime) -> None:
    await refresh_rollups(runtime, rebuild=True)


async def _read_state(session: AsyncSession) -> tuple[datetime | None, datetime | None]:
    """(watermark, refreshed_at) of the campaign rollups."""
    row = (
        await session.exec(
            sa.select(state_table.c.watermark, state_table.c.refreshed_at).where(state_table.c.name == ROLLUP)
        )
    ).first()
    return (None, None) if row is None else (utc(row.watermark), utc(row.refreshed_at) if row.refreshed_at else None)


async def _anything_changed(session: AsyncSession, since: datetime) -> bool:
    """Whether a refresh has anything to look for: one index probe per kind of change, where
    finding which days changed reads every row changed since (most of a refresh's cost
    during a large send)."""
    m, e = messages.c, enrollments.c
    probes = [
        sa.select(m.id).where(m.updated_at >= since, m.journey_id.is_not(None)),
        sa.select(conversions.c.id).where(conversions.c.converted_at >= since),
        sa.select(inbound.c.id).where(inbound.c.received_at >= since),
        sa.select(consents.c.id).where(consents.c.recorded_at >= since, consents.c.status == "opted_out"),
        sa.select(e.id).where(e.entered_at >= since),
        sa.select(e.id).where(e.ended_at >= since),
        sa.select(e.id).where(e.converted_at >= since),
    ]
    for probe in probes:
        if (await session.exec(probe.limit(1))).first() is not None:
            return True
    return False


async def read_watermark(session: AsyncSession, name: str = ROLLUP) -> datetime | None:
    value = (await session.exec(sa.select(state_table.c.watermark).where(state_table.c.name == name))).scalar()
    return None if value is None else utc(value)


async def save_watermark(session: AsyncSession, now: datetime, name: str = ROLLUP) -> None:
    updated = await session.exec(
        sa.update(state_table).where(state_table.c.name == name).values(watermark=now, refreshed_at=now)
    )
    if updated.rowcount == 0:
        await session.exec(sa.insert(state_table).values(name=name, watermark=now, refreshed_at=now))


async def _changed(session: AsyncSession, watermark: datetime) -> tuple[set[date], set[date]]:
    since = watermark - LATE_COMMIT_MARGIN
    return await changed_message_days(session, since), await changed_enrollment_days(session, since)


async def _days(session: AsyncSession, queries: list[sa.Select]) -> set[date]:
    rows = (await session.exec(sa.union(*queries))).all()
    return {date.fromisoformat(day_text(row[0])) for row in rows}


async def changed_message_days(session: AsyncSession, since: datetime) -> set[date]:
    dialect = session.get_bind().dialect.name
    m = messages.c
    day = calendar_day(m.created_at, dialect)
    queries = [
        sa.select(day).where(m.updated_at >= since, m.journey_id.is_not(None)),
        sa.select(day)
        .select_from(conversions.join(messages, m.id == conversions.c.message_id))
        .where(conversions.c.converted_at >= since),
    ]
    for table, at, extra in (
        (inbound, inbound.c.received_at, []),
        (consents, consents.c.recorded_at, [consents.c.status == "opted_out"]),
    ):
        # Messages a response since `since` may be credited to: same customer and channel, sent
        # in the window before it (a day more: a message may be sent a while after its creation).
        queries.append(
            sa.select(day)
            .select_from(
                messages.join(
                    table,
                    sa.and_(
                        table.c.customer_id == m.customer_id,
                        table.c.channel == m.channel,
                        m.created_at <= at,
                        m.created_at > plus_days(at, -(RESPONSE_WINDOW.days + 1), dialect),
                    ),
                )
            )
            .where(at >= since, m.journey_id.is_not(None), *extra)
        )
    return await _days(session, queries)


async def changed_enrollment_days(session: AsyncSession, since: datetime) -> set[date]:
    """Entry days of enrollments that entered, ended or reached their goal since, or whose
    messages changed or earned an order since (the funnel counts them by entry day)."""
    e, m, c = enrollments.c, messages.c, conversions.c
    day = calendar_day(e.entered_at, session.get_bind().dialect.name)
    return await _days(
        session,
        [
            sa.select(day).where(e.entered_at >= since),
            sa.select(day).where(e.ended_at >= since),
            sa.select(day).where(e.converted_at >= since),
            sa.select(day)
            .select_from(enrollments.join(messages, m.enrollment_id == e.id))
            .where(m.updated_at >= since),
            sa.select(day)
            .select_from(enrollments.join(conversions, c.enrollment_id == e.id))
            .where(c.converted_at >= since),
        ],
    )


def _ranges(days: set[date]) -> list[tuple[datetime, datetime]]:
    """Consecutive days merged into [start, end) ranges: {1, 2, 3, 7} → [(1, 4), (7, 8)]."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(days):
        if ranges and ranges[-1][1] == day:
            ranges[-1] = (ranges[-1][0], day + timedelta(days=1))
        else:
            ranges.append((day, day + timedelta(days=1)))
    return [(datetime.combine(a, time(), timezone.utc), datetime.combine(b, time(), timezone.utc)) for a, b in ranges]


def within_days(column, days: set[date]):
    return sa.or_(*(sa.and_(column >= start, column < end) for start, end in _ranges(days)))


async def clear_days(session: AsyncSession, tables: list[sa.Table], days: Days) -> None:
    for table in tables:
        await session.exec(sa.delete(table) if days is None else sa.delete(table).where(table.c.day.in_(days)))


async def clear_hours(session: AsyncSession, table: sa.Table, days: Days) -> None:
    """Delete an hourly rollup's rows within `days` (keyed by `hour`, not `day`)."""
    await session.exec(sa.delete(table) if days is None else sa.delete(table).where(within_days(table.c.hour, days)))


async def _recount_messages(session: AsyncSession, days: Days) -> None:
    dialect = session.get_bind().dialect.name
    m = messages.c
    await clear_days(session, [cells_table, skips_table], days)
    conditions = [m.journey_id.is_not(None)] + ([] if days is None else [within_days(m.created_at, days)])
    since = None if days is None else _ranges(days)[0][0]
    await session.exec(
        sa.insert(cells_table).from_select([*KEY_COLUMNS, *MEASURES], cell_totals(dialect, conditions, since))
    )
    await session.exec(
        sa.insert(skips_table).from_select([*KEY_COLUMNS, "reason", "count"], skip_cells(dialect, conditions))
    )
    await clear_hours(session, hourly_table, days)
    await session.exec(
        sa.insert(hourly_table).from_select(
            ["hour", "journey_id", "channel", *SERIES_MEASURES], hourly_cells(dialect, conditions)
        )
    )


async def _recount_enrollments(session: AsyncSession, days: Days) -> None:
    dialect = session.get_bind().dialect.name
    await clear_days(session, [enrollment_table, funnel_steps_table, funnel_skips_table], days)
    conditions = [] if days is None else [within_days(enrollments.c.entered_at, days)]
    for table, columns, cells in (
        (enrollment_table, [*ENROLLMENT_KEY, "enrollments", "converted"], enrollment_cells),
        (funnel_steps_table, [*STEP_KEY, *STEP_MEASURES], step_cells),
        (funnel_skips_table, [*STEP_KEY, "reason", "count"], step_skip_cells),
    ):
        await session.exec(sa.insert(table).from_select(columns, cells(dialect, conditions)))
