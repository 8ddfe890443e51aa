"""Enrollments per journey, version and status, kept by the database as they change.

`journey_enrollment_counts` holds deltas: triggers on `enrollments` (created by migration
0008, orchestrator/storage/migrations/versions/) add one row per (journey, version, status) that a statement
changed, in that statement's transaction, so the counts are exact the moment it commits,
whichever code path wrote the enrollments (the worker's bulk progress statements, ingest,
the ORM). On PostgreSQL the triggers are per statement over its transition tables, so a
bulk update of thousands of enrollments writes a handful of delta rows; SQLite (one writer)
has row triggers only.

Reads sum the deltas (`enrollment_counts`); the rollup refresh folds them (`fold_deltas`)
so the table stays at about one row per key. Bulk loads that switch triggers off (see
bench/kpis.py) must `rebuild_enrollment_counts`, which `POST /v1/kpis/rebuild` does.
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.storage.kpi_models import JourneyEnrollmentCount
from orchestrator.storage.models import Enrollment
from orchestrator.storage.queries import is_postgresql

counts = JourneyEnrollmentCount.__table__
enrollments = Enrollment.__table__
KEY = ("journey_id", "journey_version", "status")
FOLD_AFTER_ROWS = 1000  # reads sum this many rows in about a millisecond


def count_every_enrollment() -> sa.Insert:
    """The counts from scratch: one row per key (a migration's backfill, a rebuild)."""
    e = enrollments.c
    return sa.insert(counts).from_select(
        list(KEY) + ["enrollments"],
        sa.select(e.journey_id, e.journey_version, e.status, sa.func.count()).group_by(
            e.journey_id, e.journey_version, e.status
        ),
    )


async def enrollment_counts(session: AsyncSession) -> dict[tuple[str, str, str], int]:
    """(journey, version, status) → enrollments, keys with none left out."""
    c = counts.c
    rows = (
        await session.exec(
            sa.select(c.journey_id, c.journey_version, c.status, sa.func.sum(c.enrollments)).group_by(
                c.journey_id, c.journey_version, c.status
            )
        )
    ).all()
    return {(journey, version, status): int(n) for journey, version, status, n in rows if n}


async def deltas_to_fold(session: AsyncSession) -> bool:
    """Enough deltas piled up that a refresh with nothing else to do should fold them."""
    return (await session.exec(sa.select(sa.func.count()).select_from(counts))).scalar_one() > FOLD_AFTER_ROWS


async def fold_deltas(session: AsyncSession) -> None:
    """Replace the deltas with one row per key. DELETE … RETURNING takes exactly the rows it
    removes, so deltas committed meanwhile by other transactions stay and still count."""
    folded: dict[tuple, int] = defaultdict(int)
    c = counts.c
    removed = await session.exec(sa.delete(counts).returning(c.journey_id, c.journey_version, c.status, c.enrollments))
    for journey, version, status, n in removed.all():
        folded[(journey, version, status)] += n
    rows = [dict(zip(KEY, key), enrollments=n) for key, n in folded.items() if n]
    if rows:
        await session.exec(sa.insert(counts), params=rows)


async def rebuild_enrollment_counts(session: AsyncSession) -> None:
    """Count again from the enrollments (after a load with triggers off). On PostgreSQL,
    writers of enrollments wait meanwhile: a delta committed between the delete and the
    count would otherwise be counted twice."""
    if is_postgresql(session):
        await session.exec(sa.text("LOCK TABLE enrollments IN SHARE MODE"))
    await session.exec(sa.delete(counts))
    await session.exec(count_every_enrollment())
