"""Segments while the service runs: the definitions every process evaluates, kept in the database.

Start-up and a reload publish the segment files that passed their checks to
`segment_definitions`; every process refreshes its segment catalog from there together with
its journey catalog (`journeys.live.refresh_catalog`, every few seconds), so a reload through
any API process reaches every worker without a restart. A segment whose version changed is
evaluated whole at its next round (`refresh.refresh_segment`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.declared import FileLoadError
from orchestrator.segments.loader import LoadedSegment, SegmentCatalog, parse_segment
from orchestrator.storage.queries import is_postgresql
from orchestrator.storage.segment_models import SegmentDefinition

log = logging.getLogger("orchestrator.segments")
definitions = SegmentDefinition.__table__


async def publish_segments(session: AsyncSession, catalog: SegmentCatalog, now: datetime) -> None:
    """Make the catalog's segments the ones every process evaluates; a segment not in it (its
    file gone, or refused at start-up) is no longer evaluated."""
    rows = [
        dict(segment_id=s.id, version=s.version, source=s.source, source_path=str(s.path), published_at=now)
        for s in catalog.segments.values()
    ]
    await session.exec(sa.delete(definitions).where(definitions.c.segment_id.not_in(list(catalog.segments) or [""])))
    if not rows:
        return
    insert = (postgresql.insert if is_postgresql(session) else sqlite.insert)(definitions)
    # An upsert, not a delete and insert: processes starting together publish the same rows at once.
    changed = {name: insert.excluded[name] for name in ("version", "source", "source_path", "published_at")}
    await session.exec(
        insert.values(rows).on_conflict_do_update(
            index_elements=["segment_id"], set_=changed, where=definitions.c.version != insert.excluded.version
        )
    )


async def refresh_segment_catalog(session: AsyncSession, catalog: SegmentCatalog) -> None:
    """Bring `catalog` in line with the published definitions: parse what changed, drop what went."""
    published = (await session.exec(sa.select(definitions.c.segment_id, definitions.c.version))).all()
    if {segment_id: version for segment_id, version in published} == {
        s.id: s.version for s in catalog.segments.values()
    }:
        return
    current, refreshed = catalog.segments, {}
    for row in (await session.exec(sa.select(definitions).order_by(definitions.c.segment_id))).all():
        kept = current.get(row.segment_id)
        if kept is not None and kept.version == row.version:
            refreshed[row.segment_id] = kept
        elif parsed := _parsed(row):
            refreshed[row.segment_id] = parsed
    catalog.segments = refreshed


def _parsed(row) -> LoadedSegment | None:
    try:
        return parse_segment(row.source, Path(row.source_path))
    except FileLoadError as error:  # published by a process running other code: its own workers evaluate it
        log.error("segment %s version %s cannot be read here: %s", row.segment_id, row.version, error)
        return None
