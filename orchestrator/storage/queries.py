"""Statements whose SQL differs between SQLite and PostgreSQL, written once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession


def _insert_for(session: AsyncSession, table):
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


async def insert_ignoring_conflict(
    session: AsyncSession, model, values: dict[str, Any], conflict_columns: list[str]
) -> int | None:
    """INSERT … ON CONFLICT DO NOTHING RETURNING the primary key: the new key, or None if it existed."""
    table = model.__table__
    statement = (
        _insert_for(session, table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=conflict_columns)
        .returning(*table.primary_key.columns)
    )
    return (await session.exec(statement)).scalar_one_or_none()


def supports_skip_locked(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def claim_in_index_order(session: AsyncSession) -> None:
    """Call first in a transaction that claims `… ORDER BY <due> LIMIT n FOR UPDATE SKIP LOCKED`.

    Right after a burst of new work the statistics are stale: PostgreSQL expects a handful
    of due rows, picks a bitmap scan and then fetches and sorts every due row on every
    claim (100,000 due enrollments: 40-60 ms per claim instead of 0.1 ms, see BENCHMARKS.md,
    end-to-end). The (status, due) index already yields them in order, so an index scan
    under the LIMIT is always the right plan: bitmap scans are off for this transaction only.
    """
    if supports_skip_locked(session):
        await (await session.connection()).execute(text("SET LOCAL enable_bitmapscan = off"))


async def insert_many_ignoring_conflict(
    session: AsyncSession, model, rows: list[dict[str, Any]], conflict_columns: list[str]
) -> None:
    """INSERT … ON CONFLICT DO NOTHING for many rows: one cached statement, executemany
    (SQLAlchemy batches it into multi-row INSERTs on the wire)."""
    if rows:
        statement = _insert_for(session, model.__table__).on_conflict_do_nothing(index_elements=conflict_columns)
        await (await session.connection()).execute(statement, rows)


async def insert_many_returning(
    session: AsyncSession, model, rows: list[dict[str, Any]], conflict_columns: list[str], key_column
) -> list[tuple[Any, Any]]:
    """Multi-row INSERT … ON CONFLICT DO NOTHING; (key, primary key) of the rows inserted."""
    if not rows:
        return []
    table = model.__table__
    statement = (
        _insert_for(session, table).on_conflict_do_nothing(index_elements=conflict_columns)
        .returning(table.c[key_column.key], *table.primary_key.columns)
    )
    result = await (await session.connection()).execute(statement, rows)
    return [tuple(row) for row in result.all()]
