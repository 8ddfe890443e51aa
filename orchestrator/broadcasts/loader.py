"""Broadcast files → validated `BroadcastFile`s, with `file:line: key` errors (declared.py),
and into the database as drafts.

A file is a draft until someone schedules it; editing the file changes the draft. Once a
broadcast is scheduled its content is frozen in the database: an edit to its file is
reported and ignored, so what was previewed is what goes out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.broadcasts.format import BroadcastFile
from orchestrator.broadcasts.schedule import starts_at
from orchestrator.declared import FileError, declared_files, load_declared_files, read_yaml_mapping, validate_model
from orchestrator.engine.messages import storable_json
from orchestrator.journeys.loader import content_version
from orchestrator.storage.broadcast_models import Broadcast
from orchestrator.storage.queries import insert_ignoring_conflict

log = logging.getLogger("orchestrator.broadcasts")
broadcasts = Broadcast.__table__


@dataclass
class LoadedBroadcast:
    definition: BroadcastFile
    source: dict[str, Any]
    path: Path | None
    version: str


@dataclass
class BroadcastLoadReport:
    loaded: list[LoadedBroadcast] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)


def parse_broadcast(text: str, path: Path) -> LoadedBroadcast:
    source, lines = read_yaml_mapping(text, path, "broadcast (id, audience, channel, template, schedule, ...)")
    source.setdefault("id", path.stem)
    definition = validate_model(BroadcastFile, source, lines, path)
    source = storable_json(source)  # YAML dates (schedule.date) as the ISO text the model reads back
    return LoadedBroadcast(definition, source, path, content_version(source))


def from_body(source: dict[str, Any]) -> LoadedBroadcast:
    """An API body: the same model, so the same rules (pydantic raises on a bad body)."""
    definition = BroadcastFile.model_validate(source)
    source = definition.model_dump(mode="json", by_alias=True, exclude_none=True)
    return LoadedBroadcast(definition, source, None, content_version(source))


def load_directory(directory: Path) -> BroadcastLoadReport:
    files = load_declared_files(declared_files(directory), parse_broadcast, "broadcast", lambda b: b.definition.id)
    return BroadcastLoadReport(list(files.loaded.values()), files.errors)


def definition_of(row: Broadcast | dict) -> BroadcastFile:
    source = row["source"] if isinstance(row, dict) else row.source
    return BroadcastFile.model_validate(source)


async def save_draft(session: AsyncSession, loaded: LoadedBroadcast, now: datetime) -> bool:
    """Insert the broadcast as a draft, or update it while it is still one. False: it is
    past draft and its stored content stands."""
    values = dict(
        version=loaded.version,
        source=loaded.source,
        source_path=str(loaded.path) if loaded.path else None,
        priority=loaded.definition.priority,
        starts_at=starts_at(loaded.definition.schedule),
        updated_at=now,
    )
    inserted = await insert_ignoring_conflict(
        session, Broadcast, dict(id=loaded.definition.id, state="draft", created_at=now, **values), ["id"]
    )
    if inserted is not None:
        return True
    b = broadcasts.c
    result = await session.exec(
        sa.update(broadcasts).where(b.id == loaded.definition.id, b.state == "draft").values(**values)
    )
    return result.rowcount > 0


async def publish_files(session: AsyncSession, report: BroadcastLoadReport, now: datetime) -> None:
    for loaded in report.loaded:
        if not await save_draft(session, loaded, now):
            current = (
                await session.exec(sa.select(broadcasts.c.version).where(broadcasts.c.id == loaded.definition.id))
            ).scalar()
            if current != loaded.version:
                log.warning(
                    "broadcast %s is past draft: the change to %s is ignored", loaded.definition.id, loaded.path
                )
