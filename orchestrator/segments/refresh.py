"""Keep `segment_members` current: the worker's segment job.

Each round, for each segment, one transaction:

- locks the segment's `segment_states` row (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so two
  workers never evaluate one segment at once and a busy segment is skipped, not waited for;
- re-evaluates either the customers with events, consent records or profile changes (an
  import, an erasure: `customer_profile_changes`) stored since the segment's watermarks
  (ingestion writes nothing extra: the events table is the queue), at most `ROUND_ROWS` of
  each per transaction, or, once per `segment_sweep_seconds` and whenever the file changed,
  the whole segment: time windows only move in a sweep ("ordered in the last 90 days" lets
  a member go when the order is 90 days old);
- adds and removes members with one INSERT … SELECT and one DELETE, logs each entry and
  exit, and after a sweep samples the segment's size;
- turns entries and exits into `Segment Entered: <id>` / `Segment Left: <id>` events when a
  journey reacts to them (a trigger `segment_entered`, an exit rule `segment_left`), ingested
  in the same transaction like any Track call.

The first evaluation of a segment fills it without starting journeys: the customers who
already matched did not just enter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.clock import utc
from orchestrator.events.ingest import ingest
from orchestrator.events.schemas import TrackCall
from orchestrator.journeys.live import refresh_catalog
from orchestrator.runtime import Runtime
from orchestrator.segments.conditions import customers, segment_query
from orchestrator.segments.loader import LoadedSegment
from orchestrator.segments.membership import members
from orchestrator.storage.feedback_models import Consent
from orchestrator.storage.models import Event
from orchestrator.storage.queries import (
    insert_ignoring_conflict,
    insert_many_returning,
    supports_skip_locked,
)
from orchestrator.storage.segment_models import (
    CustomerProfileChange,
    SegmentMembershipChange,
    SegmentSizeSample,
    SegmentState,
)
from orchestrator.vocabulary import segment_entered_event, segment_left_event

log = logging.getLogger("orchestrator.segments")

ENTERED, LEFT = "entered", "left"
events, consents, profile_changes = Event.__table__, Consent.__table__, CustomerProfileChange.__table__
QUEUES = (events, consents, profile_changes)  # in the order of SegmentState's watermarks
# Rows of each queue one transaction reads at most: a 1,000,000-line import is absorbed in
# short transactions one after another, not one that holds SQLite's write lock for minutes.
ROUND_ROWS = 10_000
# Rounds of one segment in a row before the others get theirs: under a sustained burst a
# segment would otherwise never be caught up, and the others never evaluated.
ROUNDS_IN_A_ROW = 100


@dataclass(frozen=True)
class SegmentRound:
    segment_id: str
    swept: bool  # the whole segment was evaluated (else: only customers with new events)
    entered: int
    left: int
    behind: bool = False  # more changes were queued than one round reads: another round follows


async def refresh_segments(runtime: Runtime, sweep: bool = False) -> list[SegmentRound]:
    """One round over every segment; `sweep` evaluates each one whole, due or not."""
    rounds = []
    await refresh_catalog(runtime)  # a reload elsewhere: its segments, at most a few seconds late
    for segment in list(runtime.segments.segments.values()):
        done = await _catch_up(runtime, segment, sweep)
        if done is not None:
            rounds.append(done)
            if done.entered or done.left:
                log.info("segment %s: %d entered, %d left", done.segment_id, done.entered, done.left)
    await _forget_read_profile_changes(runtime)
    return rounds


async def _forget_read_profile_changes(runtime: Runtime) -> None:
    """Delete the profile changes every current segment has read: unlike events and consent
    records they are nothing but a queue, and each import would otherwise leave a row per
    customer behind. A segment without a state yet starts with a sweep, which reads none.

    The last one read stays: SQLite numbers a new row one past the highest there, so an
    emptied table would hand out ids again that the watermarks have already passed."""
    current = list(runtime.segments.segments)
    if not current:
        return
    states = SegmentState.__table__
    read_by_all = sa.select(sa.func.min(states.c.profile_watermark)).where(states.c.segment_id.in_(current))
    forgettable = profile_changes.c.id < read_by_all.scalar_subquery()
    async with runtime.sessions() as session, session.begin():
        # Read first: on SQLite even a DELETE of nothing takes the one write lock.
        if (await session.exec(sa.select(profile_changes.c.id).where(forgettable).limit(1))).first() is not None:
            await session.exec(sa.delete(profile_changes).where(forgettable))


async def _catch_up(runtime: Runtime, segment: LoadedSegment, sweep: bool) -> SegmentRound | None:
    """Rounds of one segment until it has read every queue to the end (or `ROUNDS_IN_A_ROW`
    of them: the next job continues), as one SegmentRound."""
    total = None
    for _ in range(ROUNDS_IN_A_ROW):
        # Before the transaction: on SQLite a round may hold the write lock, and reading the
        # journeys then would need a second connection while every other writer waits on it.
        await refresh_catalog(runtime)
        async with runtime.sessions() as session, session.begin():
            done = await refresh_segment(session, runtime, segment, sweep)
        if done is None:
            return total
        total = (
            done
            if total is None
            else SegmentRound(
                segment.id, total.swept or done.swept, total.entered + done.entered, total.left + done.left, done.behind
            )
        )
        if not done.behind:
            return total
    return total


async def _claim_state(session: AsyncSession, segment_id: str) -> SegmentState | None:
    """The segment's state row, locked; None when another worker holds it. Read first and
    written only when missing, so a round with nothing to do writes nothing (on SQLite a
    write takes the database's one write lock)."""
    claim = select(SegmentState).where(SegmentState.segment_id == segment_id)
    claim = claim.with_for_update(skip_locked=True) if supports_skip_locked(session) else claim
    state = (await session.exec(claim)).one_or_none()
    if state is None:
        await insert_ignoring_conflict(session, SegmentState, dict(segment_id=segment_id), ["segment_id"])
        state = (await session.exec(claim)).one_or_none()
    return state


async def _high_water(session: AsyncSession, table: sa.Table) -> int:
    return (await session.exec(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0)))).scalar_one()


async def refresh_segment(
    session: AsyncSession, runtime: Runtime, segment: LoadedSegment, sweep: bool = False
) -> SegmentRound | None:
    """None when another worker holds the segment, or nothing happened since the last round."""
    state = await _claim_state(session, segment.id)
    if state is None:
        return None
    now = runtime.clock.now()
    # Read before evaluating: what arrives meanwhile is the next round's.
    highs = tuple([await _high_water(session, queue) for queue in QUEUES])
    marks = (state.event_watermark, state.consent_watermark, state.profile_watermark)
    sweep_every = timedelta(seconds=runtime.settings.segment_sweep_seconds)
    swept = (
        sweep or state.version != segment.version or state.swept_at is None or now - utc(state.swept_at) >= sweep_every
    )
    if not swept and highs == marks:
        return None
    reach = highs if swept else tuple(min(high, mark + ROUND_ROWS) for high, mark in zip(highs, marks))
    candidates = None if swept else _customers_changed_between(marks, reach)
    first_fill = state.version is None
    entered, left = await apply_membership(session, segment, now, candidates)
    changed = await _log_changes(session, segment.id, entered, left, now)
    if not first_fill:
        await _tell_journeys(session, runtime, segment.id, changed)
    if swept:
        size = (await session.exec(sa.select(sa.func.count()).where(members.c.segment_id == segment.id))).scalar_one()
        session.add(SegmentSizeSample(segment_id=segment.id, members=size, sampled_at=now))
        state.version, state.swept_at = segment.version, now
    state.event_watermark, state.consent_watermark, state.profile_watermark = reach
    session.add(state)
    return SegmentRound(segment.id, swept, len(entered), len(left), behind=reach != highs)


def _customers_changed_between(marks: tuple[int, ...], reach: tuple[int, ...]) -> sa.Select:
    """Customers with an event, a consent record or a profile change stored after the
    watermarks `marks`, up to `reach`."""
    return sa.union(
        *(
            sa.select(queue.c.customer_id).where(
                queue.c.id > mark, queue.c.id <= high, queue.c.customer_id.is_not(None)
            )
            for queue, mark, high in zip(QUEUES, marks, reach)
        )
    )


async def apply_membership(
    session: AsyncSession, segment: LoadedSegment, now: datetime, candidates: sa.Select | None
) -> tuple[list[int], list[int]]:
    """Make `segment_members` match the segment for `candidates` (everyone when None): one
    INSERT … SELECT for who entered and one DELETE for who left; returns both lists of ids."""
    dialect = session.get_bind().dialect.name
    matching = segment_query(segment.definition.where, now, dialect)
    if candidates is not None:
        matching = matching.where(customers.c.id.in_(candidates))
    rows = matching.with_only_columns(
        sa.literal(segment.id), customers.c.id, sa.literal(now, sa.DateTime(timezone=True))
    )
    insert = (
        (postgresql.insert if dialect == "postgresql" else sqlite.insert)(members)
        .from_select(["segment_id", "customer_id", "entered_at"], rows)
        .on_conflict_do_nothing(index_elements=["segment_id", "customer_id"])
        .returning(members.c.customer_id)
    )
    entered = list((await session.exec(insert)).scalars())
    leaving = [members.c.segment_id == segment.id, members.c.customer_id.not_in(matching)]
    if candidates is not None:
        leaving.append(members.c.customer_id.in_(candidates))
    left = list((await session.exec(sa.delete(members).where(*leaving).returning(members.c.customer_id))).scalars())
    return entered, left


async def _log_changes(
    session: AsyncSession, segment_id: str, entered: list[int], left: list[int], now: datetime
) -> list[tuple[int, int, str]]:
    """The membership log rows written: (log id, customer id, change)."""
    written = []
    for change, ids in ((ENTERED, entered), (LEFT, left)):
        rows = [dict(segment_id=segment_id, customer_id=c, change=change, changed_at=now) for c in ids]
        logged = await insert_many_returning(
            session, SegmentMembershipChange, rows, ["id"], SegmentMembershipChange.customer_id
        )
        written += [(log_id, customer, change) for customer, log_id in logged]
    return written


async def _tell_journeys(
    session: AsyncSession, runtime: Runtime, segment_id: str, changed: list[tuple[int, int, str]]
) -> None:
    """Entries and exits as Track events, when some journey reacts to them."""
    names = {ENTERED: segment_entered_event(segment_id), LEFT: segment_left_event(segment_id)}
    wanted = [
        (log_id, customer, change)
        for log_id, customer, change in changed
        if names[change] in runtime.catalog.reacting_events
    ]
    if not wanted:
        return
    # An erased customer's enrollments all ended at the erasure: no event is written about them.
    user_ids = dict(
        (
            await session.exec(
                sa.select(customers.c.id, customers.c.user_id).where(
                    customers.c.id.in_({c for _, c, _ in wanted}), customers.c.erased_at.is_(None)
                )
            )
        ).all()
    )
    calls = [
        TrackCall(
            userId=user_ids[customer],
            event=names[change],
            properties={"segment": segment_id},
            messageId=f"segment-{change}-{log_id}",
        )
        for log_id, customer, change in wanted
        if customer in user_ids
    ]
    if calls:
        await ingest(session, runtime, calls)
