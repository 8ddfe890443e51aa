"""Give a test database an empty, fully migrated schema, without migrating it every time.

Running every migration before every test was most of the suite's time. Each database is
instead migrated for real once per test session, and later tests get the same result
cheaply:

- SQLite: the migrated file is kept as a template and copied into the test's place
  (a file copy, milliseconds).
- PostgreSQL: the session's database is emptied in place. `CREATE DATABASE … TEMPLATE` was
  measured and is far slower here (1.5–3 s per copy, against ~0.4 s for migrating); deleting
  the rows of 19 mostly empty tables and restarting their sequences costs a few milliseconds.
  Emptying is only safe while the schema is still the migrated one, and some tests change it
  (the migration tests drop it, add columns, stamp other revisions), so a fingerprint of the
  catalog (tables, columns, types, defaults, indexes, constraints, the Alembic revision) is
  compared with the one taken after the real migration; any difference and the database is
  dropped and migrated for real again.

Either way a test starts as it did when every test migrated: all tables at the head
revision, no rows, identities starting at 1.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

from orchestrator.storage.database import async_url, create_engine, drop_schema
from orchestrator.storage.migrate import upgrade_to_head

# Everything that makes one PostgreSQL schema differ from another, as one comparable text.
POSTGRES_SCHEMA_FINGERPRINT = sa.text(
    """
    SELECT md5(coalesce(string_agg(part, E'\\n' ORDER BY part), '')) FROM (
        SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
               || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
               || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') AS part
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
          AND a.attnum > 0 AND NOT a.attisdropped
        UNION ALL
        SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()
        UNION ALL
        SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
        UNION ALL
        SELECT 'sequence ' || relname FROM pg_class
        WHERE relnamespace = current_schema()::regnamespace AND relkind = 'S'
    ) AS schema_parts
    """
)
SEQUENCES = sa.text(
    "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind = 'S'"
)


class FreshSchemas:
    """Per test session: the migrated SQLite template and each PostgreSQL database's fingerprint."""

    def __init__(self) -> None:
        self._directory: tempfile.TemporaryDirectory | None = None
        self._sqlite_template: Path | None = None
        self._postgres_fingerprints: dict[str, str] = {}

    async def reset(self, url: str) -> None:
        """Leave the database at `url` with an empty, fully migrated schema."""
        path = sqlite_file(url)
        if path is not None:
            await self._copy_sqlite_template(path)
        elif async_url(url).startswith("postgresql"):
            await self._empty_postgres(url)
        else:
            await migrate_from_empty(url)

    async def _copy_sqlite_template(self, path: Path) -> None:
        if self._sqlite_template is None:
            self._directory = tempfile.TemporaryDirectory(prefix="orchestrator-schema-")
            template = Path(self._directory.name) / "migrated.db"
            await migrate_from_empty(f"sqlite:///{template}")
            self._sqlite_template = template
        # The write-ahead log and its index belong to the file being replaced; a leftover one
        # would be replayed over the copy.
        for leftover in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._sqlite_template, path)

    async def _empty_postgres(self, url: str) -> None:
        expected = self._postgres_fingerprints.get(url)
        engine = create_engine(url)
        try:
            if expected is not None:
                async with engine.begin() as connection:
                    if await postgres_fingerprint(connection) == expected:
                        await delete_all_rows(connection)
                        return
            await drop_schema(engine)
            await upgrade_to_head(engine)
            async with engine.connect() as connection:
                self._postgres_fingerprints[url] = await postgres_fingerprint(connection)
        finally:
            await engine.dispose()


async def postgres_fingerprint(connection: AsyncConnection) -> str:
    fingerprint = (await connection.execute(POSTGRES_SCHEMA_FINGERPRINT)).scalar_one()
    has_revisions = (
        await connection.execute(sa.text("SELECT to_regclass('alembic_version') IS NOT NULL"))
    ).scalar_one()
    revisions = ""
    if has_revisions:
        revisions = ",".join(
            sorted((await connection.execute(sa.text("SELECT version_num FROM alembic_version"))).scalars())
        )
    return f"{fingerprint} at {revisions}"


async def delete_all_rows(connection: AsyncConnection) -> None:
    """Children before parents, then every sequence back to 1: as after a fresh migration.
    DELETE, not TRUNCATE: on nearly empty tables it skips TRUNCATE's new files per table and
    its exclusive locks (measured in docs/testing.md)."""
    tables = [table.name for table in reversed(SQLModel.metadata.sorted_tables)]
    sequences = (await connection.execute(SEQUENCES)).scalars().all()
    statements = [f'DELETE FROM "{name}"' for name in tables]
    statements += [f'ALTER SEQUENCE "{name}" RESTART' for name in sequences]
    # One round trip for all of them (psycopg sends a parameterless multi-statement as is).
    await connection.exec_driver_sql(";\n".join(statements))


async def migrate_from_empty(url: str) -> None:
    engine = create_engine(url)
    try:
        await drop_schema(engine)
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


def sqlite_file(url: str) -> Path | None:
    """The file behind a `sqlite:///…` URL, or None (in-memory, or another database)."""
    url = async_url(url)
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    return Path(path) if path and path != ":memory:" else None
