"""Bring a database to the newest schema (`upgrade_to_head`), or check that it is there.

Every process may migrate at start-up (`ORCHESTRATOR_AUTO_MIGRATE`, on by default), so
concurrent upgrades must be harmless. The upgrade runs in one transaction that first takes
a lock: a PostgreSQL advisory lock, or SQLite's write lock (`BEGIN IMMEDIATE`). DDL is
transactional on both, so a second process waits, then finds the schema current, and a
failed upgrade leaves nothing half done.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import sqlalchemy as sa
from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from orchestrator.storage.drift import describe_differences, schema_differences
from orchestrator.storage.migrations import alembic_config
from orchestrator.storage.models import Customer

log = logging.getLogger("orchestrator")

# Any fixed 64-bit number; it only has to differ from other advisory locks in the database.
POSTGRES_MIGRATION_LOCK = 0x6F72636865737472  # "orchestr"


class SchemaNotCurrent(RuntimeError):
    """The database is behind this code's migrations (and it may not migrate on its own)."""


@lru_cache
def head_revisions() -> frozenset[str]:
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


async def upgrade_to_head(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Released with the transaction, so a process killed mid-migration never leaves it held.
            await connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_MIGRATION_LOCK})
        elif connection.dialect.name == "sqlite":
            # The driver would run each DDL statement on its own; one IMMEDIATE transaction makes
            # the upgrade all-or-nothing, holds the database's write lock against other processes
            # migrating (they wait up to busy_timeout), and saves a disk sync per statement.
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
        await connection.run_sync(_upgrade_to_head)
        await connection.commit()


async def ensure_schema_current(engine: AsyncEngine) -> None:
    """For processes that do not migrate: refuse to run on a schema older than the code."""
    async with engine.connect() as connection:
        current = await connection.run_sync(current_revisions)
    if current == head_revisions():
        return
    script = ScriptDirectory.from_config(alembic_config())
    if any(_unknown_revision(script, revision) for revision in current):
        # A newer release migrated already (rolling deploy): its migrations are additive by habit.
        log.warning(
            "database schema revision %s is newer than this code (%s)", _names(current), _names(head_revisions())
        )
        return
    raise SchemaNotCurrent(
        f"database schema is at revision {_names(current)}, this code needs {_names(head_revisions())}: "
        "run `orchestrator migrate` (ORCHESTRATOR_AUTO_MIGRATE is false)"
    )


def current_revisions(connection: sa.Connection) -> frozenset[str]:
    return frozenset(MigrationContext.configure(connection).get_current_heads())


def _upgrade_to_head(connection: sa.Connection) -> None:
    before = current_revisions(connection)
    if before == head_revisions():
        return  # the common case at every start-up: skip loading env.py and the revisions again
    if not before and _has_tables_from_before_migrations(connection):
        _adopt(connection)
    else:
        command.upgrade(alembic_config(connection), "head")
    log.info("database schema upgraded from revision %s to %s", _names(before), _names(current_revisions(connection)))


def _has_tables_from_before_migrations(connection: sa.Connection) -> bool:
    return sa.inspect(connection).has_table(Customer.__tablename__)


def _adopt(connection: sa.Connection) -> None:
    """A database made by `create_all` before migrations existed: add what is missing and
    harmless to add (tables, indexes), then mark it current only if it now matches the
    models exactly. Anything else (a column, a type) needs a person."""
    SQLModel.metadata.create_all(connection)  # missing tables, with their indexes
    for difference in schema_differences(connection):
        if difference[0] == "add_index":
            difference[1].create(connection)
    remaining = schema_differences(connection)
    if remaining:
        raise SchemaNotCurrent(
            "this database was created before migrations and differs from the models; bring it in line "
            "by hand (or start from an empty database), then run `orchestrator migrate`:\n"
            + describe_differences(remaining)
        )
    command.stamp(alembic_config(connection), "head")
    log.warning("database created before migrations: adopted as %s", _names(head_revisions()))


def _unknown_revision(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is None
    except CommandError:
        return True


def _names(revisions: frozenset[str]) -> str:
    return ", ".join(sorted(revisions)) or "none"
