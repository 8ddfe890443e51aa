"""Do the models and the migrations describe the same schema? If not, write the next migration.

The models (SQLModel tables) are what the code expects; the migrations are what databases
get. `schema_differences` compares a migrated database with the models, the way Alembic's
autogenerate does, and `make_migration` turns the differences into the next revision.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

from orchestrator.storage.database import create_engine
from orchestrator.storage.migrations import alembic_config, migration_options

MAKEMIGRATION_HINT = (
    'the models changed without a migration: run `orchestrator makemigration "what changed"`, '
    "review the new file in orchestrator/storage/migrations/versions/ and commit it"
)


def schema_differences(connection: sa.Connection, metadata: sa.MetaData | None = None) -> list[Any]:
    context = MigrationContext.configure(connection, opts=migration_options(connection.dialect.name))
    return compare_metadata(context, metadata if metadata is not None else SQLModel.metadata)


def describe_differences(differences: list[Any]) -> str:
    """One line per difference; `add_*` is in the models but not in the database."""
    flat = [
        item for difference in differences for item in (difference if isinstance(difference, list) else [difference])
    ]
    return "\n".join(f"  - {_describe(item)}" for item in flat)


def _describe(difference: tuple) -> str:
    kind = difference[0]
    if kind in ("add_table", "remove_table"):
        return f"{kind} {difference[1].name}"
    if kind in ("add_column", "remove_column"):
        column = difference[3]
        return f"{kind} {difference[2]}.{column.name} {column.type}{'' if column.nullable else ' NOT NULL'}"
    if kind in ("add_index", "remove_index"):
        index = difference[1]
        columns = ", ".join(getattr(expression, "name", None) or str(expression) for expression in index.expressions)
        return f"{kind} {index.name} on {index.table.name} ({columns}){' unique' if index.unique else ''}"
    if kind in ("add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        constraint = difference[1]
        return f"{kind} {constraint.name or type(constraint).__name__} on {constraint.table.name}"
    if kind.startswith("modify_"):
        _, _schema, table, column, _existing, database_value, model_value = difference
        return f"{kind} {table}.{column}: database {database_value!r}, models {model_value!r}"
    return repr(difference)


async def make_migration(
    message: str,
    *,
    database_url: str | None = None,
    metadata: sa.MetaData | None = None,
    extra_version_dirs: tuple[Path, ...] = (),
    version_path: Path | None = None,
) -> Path | None:
    """Write the revision that takes the newest migration to the models; None if nothing changed.

    By default it compares against a scratch SQLite database migrated to head, so it needs no
    running server; `database_url` names another database, which must be at head already.
    """
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(database_url or f"sqlite:///{Path(scratch) / 'autogenerate.db'}")
        try:
            async with engine.begin() as connection:
                return await connection.run_sync(
                    _autogenerate, message, database_url is None, metadata, extra_version_dirs, version_path
                )
        finally:
            await engine.dispose()


def _autogenerate(
    connection: sa.Connection, message, scratch, metadata, extra_version_dirs, version_path
) -> Path | None:
    config = alembic_config(connection, target_metadata=metadata, extra_version_dirs=extra_version_dirs)
    if scratch:
        command.upgrade(config, "head")
    if not schema_differences(connection, config.attributes["target_metadata"]):
        return None
    # Numbered revisions read in order; two branches picking the same number fail loudly.
    rev_id = f"{len(list(ScriptDirectory.from_config(config).walk_revisions())) + 1:04d}"
    script = command.revision(
        config,
        message=message,
        autogenerate=True,
        rev_id=rev_id,
        version_path=str(version_path) if version_path else None,
    )
    return Path(script.path)
