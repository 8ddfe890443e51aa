"""Keep `visits` and the website rollups current: page and screen views folded into visits
off the ingest path (ingesting a page call stays one INSERT), by the worker with the KPI
rollups.

Incremental, on the rollup's watermark pattern (`orchestrator.kpis.rollup`, its own
watermark named "site"): each refresh looks at what was received since the watermark (less
the late-commit margin) and finds the visitors it touches, each from a moment on:

- a page or screen view: its visitor, from its `timestamp` (late or out-of-order views
  included: they are placed by when they happened, not when they arrived);
- an `Order Completed`: its visitor, from the order's time less the conversion window;
- an identity link (identify/alias naming an anonymousId): the anonymousId's visits are
  dropped and the customer's counted again from the beginning, anonymous views included.

For each such visitor, the visits that end within the gap before that moment, or later, are
deleted, and the visitor's views from the earliest of their starts on are sessionized again
(`orchestrator.kpis.visits`). Visits before stay: a gap separates them from anything
re-counted. Then the days whose visits changed are counted again into `site_hourly` and
`site_daily` (`orchestrator.kpis.site_cells`), in the same transaction; every day when the
"site-cells" state is missing (a migration that reshapes those tables drops it), without
folding the page calls again. Doing it again changes nothing, so the margin's overlap is
harmless; the refresh is serialized across workers by an advisory lock (and
`UNIQUE(visitor, started_at)` stands behind it).

The first fold (no watermark yet: the page calls stored before visits existed) commits
every `VISITORS_PER_COMMIT` visitors and resumes after the last one committed; a rebuild
folds everything in one transaction.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, nullcontext
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.broadcasts.as_journey import broadcast_of_journey
from orchestrator.clock import utc
from orchestrator.delivery.landing import referenced_message
from orchestrator.kpis.orders import ORDER_EVENT
from orchestrator.kpis.rollup import LATE_COMMIT_MARGIN, process_lock, read_watermark, save_watermark
from orchestrator.kpis.site_cells import recount_site_days
from orchestrator.kpis.visits import Credit, View, credit_orders, sessionize, visit_row
from orchestrator.runtime import Runtime
from orchestrator.storage.kpi_models import KpiRollupState, Visit
from orchestrator.storage.models import Event, IdentityLink, Message
from orchestrator.storage.queries import is_postgresql

SITE = "site"
SITE_CELLS = "site-cells"  # absent: the site rollups are counted again from every visit
FIRST_FOLD = "site-first-fold"  # present while the first fold runs, in commits
VISITORS_PER_COMMIT = 20_000  # the first fold's: about 250,000 page calls, a minute of work
POSTGRES_SITE_LOCK = 0x7369746576697374  # "sitevist": any fixed number no other advisory lock uses
VIEW_TYPES = ("page", "screen")
CHUNK = 500  # visitors folded per round of queries
events, links, visits, state = Event.__table__, IdentityLink.__table__, Visit.__table__, KpiRollupState.__table__
FROM_THE_START = datetime(1900, 1, 1, tzinfo=timezone.utc)  # before any timestamp a sender could mean


def customer_visitor(customer_id: int) -> str:
    return f"c:{customer_id}"


def anonymous_visitor(anonymous_id: str) -> str:
    return f"a:{anonymous_id}"


@asynccontextmanager
async def _folding(runtime: Runtime) -> AsyncIterator[AsyncSession]:
    """A transaction that folds, serialized with every other fold.

    SQLite: one writer at a time in the process, with the rollups. PostgreSQL: the advisory
    lock alone, so a long fold never holds up this process's campaign rollups."""
    sqlite = runtime.engine.dialect.name == "sqlite"
    async with process_lock(runtime) if sqlite else nullcontext(), runtime.sessions() as session, session.begin():
        if is_postgresql(session):
            await session.exec(sa.text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=POSTGRES_SITE_LOCK))
        yield session


async def refresh_visits(runtime: Runtime, *, rebuild: bool = False) -> set[date] | None:
    """Fold what arrived since the last refresh; the days of the site rollups counted again
    (None: all of them, on the first refresh or a rebuild)."""
    settings = runtime.settings
    gap = timedelta(minutes=settings.visit_gap_minutes)
    window = timedelta(minutes=settings.visit_conversion_window_minutes)
    first_fold = False if rebuild else await _first_fold_in_commits(runtime, gap, window)
    async with _folding(runtime) as session:
        now = runtime.clock.now()
        # A rebuild folds everything in this one transaction: readers keep the old figures until it commits.
        watermark = None if rebuild else await read_watermark(session, SITE)
        if watermark is None:
            await session.exec(sa.delete(visits))
            await session.exec(sa.delete(state).where(state.c.name == FIRST_FOLD))  # a first fold's, superseded
            starts = await _every_visitor(session)
        else:
            starts = await _touched_visitors(session, watermark - LATE_COMMIT_MARGIN, window)
        days: set[date] | None = set()
        names = sorted(starts)
        for at in range(0, len(names), CHUNK):
            chunk = {name: starts[name] for name in names[at : at + CHUNK]}
            days |= await _fold(session, runtime, chunk, gap, window)
        if first_fold or watermark is None or await read_watermark(session, SITE_CELLS) is None:
            days = None  # everything folded again, or the rollups' shape changed (an upgrade)
        await recount_site_days(session, days)
        await save_watermark(session, now, SITE)
        await save_watermark(session, now, SITE_CELLS)
        return days


async def _first_fold_in_commits(runtime: Runtime, gap: timedelta, window: timedelta) -> bool:
    """The first fold, over the page calls stored before the fold's watermark existed (the
    upgrade that brings visits): `VISITORS_PER_COMMIT` visitors a transaction rather than
    all in one, which at 10 million page calls would hold a transaction for half an hour and
    lose it all to a restart. The "site-first-fold" state keeps when it began and the last
    visitor committed, so whichever worker folds next resumes after it. Whether it ran.

    When it ends, the watermark is when it began: what arrived meanwhile is folded next, as
    any refresh folds what arrived since the previous one (folding a visitor again changes
    nothing). The rollups are counted by that next fold, from every visit."""
    async with runtime.sessions() as session:
        if await read_watermark(session, SITE) is not None:
            return False  # the usual case, seen without waiting for a fold's lock
    visitors: list[str] | None = None
    while True:
        async with _folding(runtime) as session:
            if await read_watermark(session, SITE) is not None:
                return visitors is not None
            progress = (
                await session.exec(sa.select(state.c.watermark, state.c.resume_after).where(state.c.name == FIRST_FOLD))
            ).first()
            if progress is None:
                await session.exec(sa.delete(visits))  # any left from an earlier schema's fold
                progress = (runtime.clock.now(), "")
                await session.exec(
                    sa.insert(state).values(name=FIRST_FOLD, watermark=progress[0], refreshed_at=progress[0])
                )
            began, after = utc(progress[0]), progress[1] or ""
            if visitors is None:
                visitors = sorted(await _every_visitor(session))
            start = bisect_right(visitors, after)
            batch = visitors[start : start + VISITORS_PER_COMMIT]
            if not batch:
                await session.exec(sa.delete(state).where(state.c.name == FIRST_FOLD))
                await save_watermark(session, began, SITE)
                return True
            for at in range(0, len(batch), CHUNK):
                await _fold(session, runtime, dict.fromkeys(batch[at : at + CHUNK], FROM_THE_START), gap, window)
            await session.exec(
                sa.update(state)
                .where(state.c.name == FIRST_FOLD)
                .values(resume_after=batch[-1], refreshed_at=runtime.clock.now())
            )


async def rebuild_visits(runtime: Runtime) -> None:
    await refresh_visits(runtime, rebuild=True)


def _earliest(starts: dict[str, datetime], visitor: str, at: datetime) -> None:
    starts[visitor] = min(starts.get(visitor, at), at)


async def _links_of(session: AsyncSession, anonymous_ids: Iterable[str]) -> dict[str, int]:
    ids = list(set(anonymous_ids))
    found: dict[str, int] = {}
    for at in range(0, len(ids), CHUNK):
        rows = await session.exec(
            sa.select(links.c.anonymous_id, links.c.customer_id).where(links.c.anonymous_id.in_(ids[at : at + CHUNK]))
        )
        found.update({anonymous: customer for anonymous, customer in rows.all()})
    return found


def _visitor(customer_id: int | None, anonymous_id: str | None, linked: dict[str, int]) -> str | None:
    if customer_id is not None:
        return customer_visitor(customer_id)
    if anonymous_id is None:
        return None
    return customer_visitor(linked[anonymous_id]) if anonymous_id in linked else anonymous_visitor(anonymous_id)


async def _every_visitor(session: AsyncSession) -> dict[str, datetime]:
    rows = (
        await session.exec(
            sa.select(events.c.customer_id, events.c.anonymous_id)
            .where(events.c.type.in_(VIEW_TYPES))
            .group_by(events.c.customer_id, events.c.anonymous_id)
        )
    ).all()
    linked = await _links_of(session, (a for c, a in rows if c is None and a is not None))
    starts: dict[str, datetime] = {}
    for customer_id, anonymous_id in rows:
        if (visitor := _visitor(customer_id, anonymous_id, linked)) is not None:
            starts[visitor] = FROM_THE_START
    return starts


async def _touched_visitors(session: AsyncSession, since: datetime, window: timedelta) -> dict[str, datetime]:
    e = events.c
    touched = sa.or_(e.type.in_(VIEW_TYPES), sa.and_(e.type == "track", e.name == ORDER_EVENT))
    rows = (
        await session.exec(
            sa.select(e.customer_id, e.anonymous_id, e.type, sa.func.min(e.timestamp))
            .where(touched, e.received_at >= since)
            .group_by(e.customer_id, e.anonymous_id, e.type)
        )
    ).all()
    new_links = (
        await session.exec(sa.select(links.c.anonymous_id, links.c.customer_id).where(links.c.linked_at >= since))
    ).all()
    linked = await _links_of(session, (a for c, a, _, _ in rows if c is None and a is not None))
    starts: dict[str, datetime] = {}
    for customer_id, anonymous_id, kind, at in rows:
        if (visitor := _visitor(customer_id, anonymous_id, linked)) is not None:
            _earliest(starts, visitor, utc(at) - (window if kind == "track" else timedelta(0)))
    for anonymous_id, customer_id in new_links:
        starts[anonymous_visitor(anonymous_id)] = FROM_THE_START  # its visits go: they are the customer's now
        starts[customer_visitor(customer_id)] = FROM_THE_START
    return starts


async def _fold(
    session: AsyncSession, runtime: Runtime, starts: dict[str, datetime], gap: timedelta, window: timedelta
) -> set[date]:
    """Delete and sessionize again the chunk's visitors from their moments; the days touched."""
    v = visits.c
    stale = (
        await session.exec(
            sa.select(v.id, v.visitor, v.started_at, v.ended_at).where(
                v.visitor.in_(list(starts)), v.ended_at >= min(starts.values()) - gap
            )
        )
    ).all()
    days: set[date] = set()
    doomed = []
    for visit_id, visitor, started_at, ended_at in stale:
        if utc(ended_at) >= starts[visitor] - gap:
            doomed.append(visit_id)
            days.add(utc(started_at).date())
            _earliest(starts, visitor, utc(started_at))
    for at in range(0, len(doomed), CHUNK):
        await session.exec(sa.delete(visits).where(v.id.in_(doomed[at : at + CHUNK])))
    customers = {int(name[2:]) for name in starts if name.startswith("c:")}
    anonymous = {name[2:] for name in starts if name.startswith("a:")}
    linked_rows = (
        await session.exec(
            sa.select(links.c.anonymous_id, links.c.customer_id).where(links.c.customer_id.in_(customers))
        )
    ).all()
    linked = {anonymous_id: customer_id for anonymous_id, customer_id in linked_rows}
    linked |= await _links_of(session, anonymous)
    views, orders = await _events_of(session, customers, anonymous | set(linked), min(starts.values()), linked)
    rows = []
    credits = await _credits(session, runtime, views)
    for visitor, since in starts.items():
        mine = [view for view in views.get(visitor, []) if view.at >= since]
        if not mine:
            continue
        drafts = sessionize(mine, gap)
        credit_orders(drafts, [at for at in orders.get(visitor, []) if at >= since], window)
        customer_id = int(visitor[2:]) if visitor.startswith("c:") else None
        for draft in drafts:
            rows.append(visit_row(visitor, customer_id, draft, credits.get, runtime.settings.landing_utm_source))
            days.add(draft.started_at.date())
    if rows:  # executemany: compiled once (a many-row VALUES would be compiled for every chunk)
        await (await session.connection()).execute(sa.insert(visits), rows)
    return days


async def _events_of(
    session: AsyncSession, customers: set[int], anonymous: set[str], since: datetime, linked: dict[str, int]
) -> tuple[dict[str, list[View]], dict[str, list[datetime]]]:
    e = events.c
    whose = sa.or_(e.customer_id.in_(customers), sa.and_(e.customer_id.is_(None), e.anonymous_id.in_(anonymous)))
    kinds = sa.or_(e.type.in_(VIEW_TYPES), sa.and_(e.type == "track", e.name == ORDER_EVENT))
    rows = await session.exec(
        sa.select(e.customer_id, e.anonymous_id, e.type, e.timestamp, e.properties, e.context).where(
            whose, kinds, e.timestamp >= since
        )
    )
    views: dict[str, list[View]] = defaultdict(list)
    orders: dict[str, list[datetime]] = defaultdict(list)
    for customer_id, anonymous_id, kind, at, properties, context in rows.all():
        visitor = _visitor(customer_id, anonymous_id, linked)
        if visitor is None:
            continue
        if kind == "track":
            orders[visitor].append(utc(at))
        else:
            views[visitor].append(View(utc(at), properties or {}, context))
    return views, orders


async def _credits(session: AsyncSession, runtime: Runtime, views: dict[str, list[View]]) -> dict[str, Credit]:
    """Message reference → the message it names, for the verified references among the views."""
    references = {view.message_reference for found in views.values() for view in found} - {None}
    ids = {reference: referenced_message(runtime.settings, reference) for reference in references}
    wanted = sorted({i for i in ids.values() if i is not None})
    if not wanted:
        return {}
    m = Message.__table__.c
    rows = (await session.exec(sa.select(m.id, m.channel, m.journey_id).where(m.id.in_(wanted)))).all()
    # A broadcast's messages belong to the one-step journey it compiles to (broadcasts/as_journey.py).
    found = {row[0]: Credit(row[0], row[1], row[2] or "", broadcast_of_journey(row[2]) or "") for row in rows}
    return {reference: found[i] for reference, i in ids.items() if i in found}
