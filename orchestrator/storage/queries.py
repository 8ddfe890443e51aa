"""Statements whose SQL differs between SQLite and PostgreSQL, written once."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession


def is_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _insert_for(session: AsyncSession, table):
    return (postgresql.insert if is_postgresql(session) else sqlite.insert)(table)


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
    return is_postgresql(session)


async def claim_in_index_order(session: AsyncSession) -> None:
    """Call first in a transaction that claims `… ORDER BY <due> LIMIT n FOR UPDATE SKIP LOCKED`.

    Right after a burst of new work the statistics are stale: PostgreSQL expects a handful
    of due rows, picks a bitmap scan and then fetches and sorts every due row on every
    claim (100,000 due enrollments: 40-60 ms per claim instead of 0.1 ms, see bench/results/HISTORY.md,
    end-to-end). The (status, due) index already yields them in order, so an index scan
    under the LIMIT is always the right plan: bitmap scans are off for this transaction only.
    """
    if supports_skip_locked(session):
        await (await session.connection()).execute(text("SET LOCAL enable_bitmapscan = off"))


async def insert_many_ignoring_conflict(
    session: AsyncSession, model, rows: list[dict[str, Any]], conflict_columns: list[str]
) -> None:
    """INSERT … ON CONFLICT DO NOTHING for many rows, in one statement."""
    if rows:
        await _insert_many(session, model.__table__, rows, conflict_columns, returning=())


async def insert_many_returning(
    session: AsyncSession, model, rows: list[dict[str, Any]], conflict_columns: list[str], key_column
) -> list[tuple[Any, Any]]:
    """Many-row INSERT … ON CONFLICT DO NOTHING; (key, primary key) of the rows inserted."""
    if not rows:
        return []
    table = model.__table__
    returning = (table.c[key_column.key], *table.primary_key.columns)
    return await _insert_many(session, table, rows, conflict_columns, returning)


async def _insert_many(
    session: AsyncSession, table: sa.Table, rows: list[dict[str, Any]], conflict_columns: list[str], returning: tuple
) -> list[tuple[Any, Any]]:
    connection = await session.connection()
    if is_postgresql(session):
        statement, defaulted = _recordset_insert(
            table, tuple(rows[0]), tuple(conflict_columns), tuple(c.name for c in returning)
        )
        if defaulted:  # what SQLAlchemy's own INSERT would fill in: Python-side defaults
            rows = [
                {
                    **row,
                    **{name: default.arg(None) if default.is_callable else default.arg for name, default in defaulted},
                }
                for row in rows
            ]
        result = await connection.execute(statement, {"rows": _json_rows(rows)})
    else:  # SQLite: executemany, which SQLAlchemy batches into multi-row INSERTs
        statement = _insert_for(session, table).on_conflict_do_nothing(index_elements=conflict_columns)
        result = await connection.execute(statement.returning(*returning) if returning else statement, rows)
    return [tuple(row) for row in result.all()] if returning else []


# Many rows go to PostgreSQL as ONE parameter: a JSON array of objects, turned back into typed
# rows by `json_to_recordset`. The statement text is the same for any number of rows (a
# multi-row VALUES list is new text per batch size, which psycopg parses in Python: a third
# of the API's time on a 1,000-event batch), and the rows are encoded by the C JSON encoder
# (one array parameter per column was encoded element by element in Python, quoting each
# string with a regular expression: half of a 1,000-event batch). bench/results/HISTORY.md, ingest.


def _json_rows(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=_json_value, separators=(",", ":"))


def _json_value(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()  # PostgreSQL reads ISO 8601, offset included
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} in a bulk statement")


_POSTGRESQL = postgresql.dialect()


def _recordset(table: sa.Table, names: Iterable[str]) -> str:
    """`json_to_recordset(:rows) AS r("a" <type of a>, …)`: each object's keys are column names."""
    columns = ", ".join(
        f'"{name}" {table.c[name].type.dialect_impl(_POSTGRESQL).compile(dialect=_POSTGRESQL)}' for name in names
    )
    return f"json_to_recordset(CAST(:rows AS json)) AS r({columns})"


@functools.lru_cache(maxsize=64)
def _recordset_insert(
    table: sa.Table, given: tuple[str, ...], conflict_columns: tuple[str, ...], returning: tuple[str, ...]
) -> tuple[sa.TextClause, tuple]:
    """Per table and set of columns, once: the statement and the columns filled from their
    Python-side defaults."""
    defaulted = tuple(
        (c.name, c.default)
        for c in table.columns
        if c.name not in given and c.default is not None and not c.primary_key
    )
    names = [*given, *(name for name, _ in defaulted)]
    quoted = ", ".join(f'"{name}"' for name in names)
    sql = (
        f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} FROM {_recordset(table, names)} '
        f"ON CONFLICT ({', '.join(conflict_columns)}) DO NOTHING"
    )
    if returning:
        sql += " RETURNING " + ", ".join(f'"{name}"' for name in returning)
    return sa.text(sql), defaulted


async def update_many(session: AsyncSession, table: sa.Table, key: str, rows: list[dict[str, Any]]) -> None:
    """Set each row's columns where `key` matches: on PostgreSQL one `UPDATE … FROM
    json_to_recordset(…)` for any number of rows (an executemany sends one UPDATE per row,
    each planned and run on its own); elsewhere an executemany. Every row carries the same
    columns, `key` among them."""
    if not rows:
        return
    connection = await session.connection()
    names = tuple(rows[0])
    if is_postgresql(session):
        await connection.execute(_recordset_update(table, key, names), {"rows": _json_rows(rows)})
    else:  # SQLAlchemy reserves a table's column names for the SET clause's own parameters
        await connection.execute(_update_by_key(table, key, names), [{**row, f"_{key}": row[key]} for row in rows])


@functools.lru_cache(maxsize=64)
def _update_by_key(table: sa.Table, key: str, names: tuple[str, ...]) -> sa.Update:
    return (
        sa.update(table)
        .where(table.c[key] == sa.bindparam(f"_{key}"))
        .values({name: sa.bindparam(name) for name in names if name != key})
    )


@functools.lru_cache(maxsize=64)
def _recordset_update(table: sa.Table, key: str, names: tuple[str, ...]) -> sa.TextClause:
    assignments = ", ".join(f'"{name}" = r."{name}"' for name in names if name != key)
    return sa.text(
        f'UPDATE "{table.name}" SET {assignments} FROM {_recordset(table, names)} '
        f'WHERE "{table.name}"."{key}" = r."{key}"'
    )


def any_of(session: AsyncSession, column, values) -> sa.ColumnElement[bool]:
    """`column IN values`. On PostgreSQL `column = ANY(<one array parameter>)`, whose text does
    not grow with the list (see `_json_rows` for why that matters)."""
    values = list(values)
    if is_postgresql(session):
        return column == sa.any_(sa.bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    return column.in_(values)
