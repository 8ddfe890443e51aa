"""Preview a segment: who matches it now (evaluated live, not read from the membership table),
as a count and a sample, for the CLI, the API and the console."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.segments.conditions import customers, segment_query
from orchestrator.segments.loader import LoadedSegment


@dataclass(frozen=True)
class SampleCustomer:
    user_id: str
    email: str | None
    phone: str | None
    locale: str | None
    timezone: str | None


@dataclass(frozen=True)
class Preview:
    segment_id: str
    evaluated_at: datetime
    count: int
    sample: list[SampleCustomer]


async def preview_segment(session: AsyncSession, segment: LoadedSegment, now: datetime, limit: int = 20) -> Preview:
    """Two queries: the count, and the first `limit` matching customers by userId."""
    matching = segment_query(segment.definition.where, now, session.get_bind().dialect.name).subquery()
    total = (await session.exec(sa.select(sa.func.count()).select_from(matching))).scalar_one()
    c = customers.c
    rows = await session.exec(
        sa.select(c.user_id, c.email, c.phone, c.locale, c.timezone)
        .where(c.id.in_(sa.select(matching.c.id)))
        .order_by(c.user_id)
        .limit(limit)
    )
    return Preview(segment.id, now, total, [SampleCustomer(*row) for row in rows.all()])
