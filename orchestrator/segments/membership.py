"""A segment's current members, as stored in `segment_members`, its size over time and its log.

`members_select` is what other domains build on (a broadcast's audience is a segment): a
SELECT of `customer_id` usable inside `INSERT … SELECT` on SQLite and PostgreSQL alike.
`mark_profiles_changed` is how a change without an event reaches membership (an import, an
erasure): the next segment round re-evaluates those customers, as it does those with events.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.clock import utc
from orchestrator.storage.models import Customer
from orchestrator.storage.queries import insert_many_ignoring_conflict
from orchestrator.storage.segment_models import (
    CustomerProfileChange,
    SegmentMember,
    SegmentMembershipChange,
    SegmentSizeSample,
)

members = SegmentMember.__table__
samples = SegmentSizeSample.__table__
changes = SegmentMembershipChange.__table__
customers = Customer.__table__


def members_select(segment_id: str) -> sa.Select:
    """The segment's current members: one `customer_id` column, one row per member."""
    return sa.select(members.c.customer_id).where(members.c.segment_id == segment_id)


async def mark_profiles_changed(session: AsyncSession, customer_ids: list[int], now: datetime) -> None:
    """Queue these customers for the next segment round, in the caller's transaction (one
    INSERT, so an import marks a batch of lines with one statement)."""
    rows = [dict(customer_id=customer_id, changed_at=now) for customer_id in customer_ids]
    await insert_many_ignoring_conflict(session, CustomerProfileChange, rows, ["id"])  # ids are new: no conflict


async def member_counts(session: AsyncSession, segment_id: str | None = None) -> dict[str, int]:
    """Current members of every segment that has any, or of `segment_id` alone."""
    query = sa.select(members.c.segment_id, sa.func.count()).group_by(members.c.segment_id)
    if segment_id is not None:
        query = query.where(members.c.segment_id == segment_id)
    return dict((await session.exec(query)).all())


async def size_history(session: AsyncSession, segment_id: str, limit: int = 200) -> list[tuple[datetime, int]]:
    """(sampled at, members) after each sweep, oldest first: the latest `limit` samples."""
    latest = (
        sa.select(samples.c.sampled_at, samples.c.members)
        .where(samples.c.segment_id == segment_id)
        .order_by(samples.c.sampled_at.desc(), samples.c.id.desc())
        .limit(limit)
    )
    return [(utc(at), size) for at, size in reversed((await session.exec(latest)).all())]


async def recent_changes(session: AsyncSession, segment_id: str, limit: int = 20) -> list[tuple[datetime, str, str]]:
    """(when, userId, entered | left), newest first."""
    rows = await session.exec(
        sa.select(changes.c.changed_at, customers.c.user_id, changes.c.change)
        .join(customers, customers.c.id == changes.c.customer_id)
        .where(changes.c.segment_id == segment_id)
        .order_by(changes.c.id.desc())
        .limit(limit)
    )
    return [(utc(at), user_id, change) for at, user_id, change in rows.all()]
