"""Statements whose SQL differs between SQLite and PostgreSQL, written once."""

from __future__ import annotations

import functools
import json
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
    claim (100,000 due enrollments: 40-60 ms per claim instead of 0.1 ms, see BENCHMARKS.md,
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


async def _insert_many(session: AsyncSession, table: sa.Table, rows: list[dict[str, Any]],
                       conflict_columns: list[str], returning: tuple) -> list[tuple[Any, Any]]:
    connection = await session.connection()
    if is_postgresql(session):
        statement, parameters = _unnest_insert(table, rows, conflict_columns, returning)
        result = await connection.execute(statement, parameters)
    else:  # SQLite: executemany, which SQLAlchemy batches into multi-row INSERTs
        statement = _insert_for(session, table).on_conflict_do_nothing(index_elements=conflict_columns)
        result = await connection.execute(statement.returning(*returning) if returning else statement, rows)
    return [tuple(row) for row in result.all()] if returning else []


def _unnest_insert(table: sa.Table, rows: list[dict[str, Any]], conflict_columns: list[str],
                   returning: tuple) -> tuple[sa.TextClause, dict[str, list]]:
    """`INSERT … SELECT … FROM unnest(<one array per column>)`: the statement text is the same
    for any number of rows. A multi-row VALUES list is new text for every batch size, and
    psycopg parses each such text in Python (`_query2pg_nocache`): in a 1,000-event batch that
    parse was a third of the API's time (BENCHMARKS.md, ingest)."""
    statement, defaulted, json_columns = _unnest_plan(table, tuple(rows[0]), tuple(conflict_columns),
                                                      tuple(c.name for c in returning))
    parameters = {name: [row[name] for row in rows] for name in rows[0]}
    for name in json_columns:  # sent as text, cast per value in the statement
        parameters[name] = [None if value is None else json.dumps(value) for value in parameters[name]]
    for name, default in defaulted:  # what SQLAlchemy's own INSERT would fill in: Python-side defaults
        parameters[name] = [default.arg(None) if default.is_callable else default.arg for _ in rows]
    return statement, parameters


_POSTGRESQL = postgresql.dialect()


@functools.lru_cache(maxsize=64)
def _unnest_plan(table: sa.Table, given: tuple[str, ...], conflict_columns: tuple[str, ...],
                 returning: tuple[str, ...]) -> tuple[sa.TextClause, tuple, tuple[str, ...]]:
    """Per table and set of columns, once: the statement, the columns filled from their
    Python-side defaults, and the JSON columns."""
    defaulted = tuple((c.name, c.default) for c in table.columns
                      if c.name not in given and c.default is not None and not c.primary_key)
    names = [*given, *(name for name, _ in defaulted)]
    arrays, values, json_columns = _array_parameters(table, names)
    quoted = ", ".join(f'"{name}"' for name in names)
    aliases = ", ".join(f"v{i}" for i in range(len(names)))
    sql = (f'INSERT INTO "{table.name}" ({quoted}) SELECT {", ".join(values)} FROM unnest({", ".join(arrays)}) '
           f'AS rows({aliases}) ON CONFLICT ({", ".join(conflict_columns)}) DO NOTHING')
    if returning:
        sql += " RETURNING " + ", ".join(f'"{name}"' for name in returning)
    return sa.text(sql), defaulted, tuple(json_columns)


def _array_parameters(table: sa.Table, names: list[str]) -> tuple[list[str], list[str], list[str]]:
    """For each column: the array parameter cast to its type, the unnested value's expression
    (`v<i>`, JSON cast back from text) and which columns are JSON (sent as text)."""
    arrays, values, json_columns = [], [], []
    for i, name in enumerate(names):
        column_type = table.c[name].type.dialect_impl(_POSTGRESQL)
        if isinstance(column_type, sa.JSON):
            json_columns.append(name)
            arrays.append(f"CAST(:{name} AS text[])")
            values.append(f"v{i}::{'jsonb' if isinstance(column_type, postgresql.JSONB) else 'json'}")
        else:
            arrays.append(f"CAST(:{name} AS {column_type.compile(dialect=_POSTGRESQL)}[])")
            values.append(f"v{i}")
    return arrays, values, json_columns


async def update_many(session: AsyncSession, table: sa.Table, key: str, rows: list[dict[str, Any]]) -> None:
    """Set each row's columns where `key` matches: on PostgreSQL one `UPDATE … FROM unnest(…)`
    for any number of rows (an executemany sends one UPDATE per row, each planned and run on
    its own); elsewhere an executemany. Every row carries the same columns, `key` among them."""
    if not rows:
        return
    connection = await session.connection()
    names = tuple(rows[0])
    if not is_postgresql(session):
        # SQLAlchemy reserves a table's column names for the SET clause's own parameters.
        await connection.execute(_update_by_key(table, key, names),
                                 [{**row, f"_{key}": row[key]} for row in rows])
        return
    statement, json_columns = _unnest_update(table, key, names)
    parameters = {name: [row[name] for row in rows] for name in names}
    for name in json_columns:
        parameters[name] = [None if value is None else json.dumps(value) for value in parameters[name]]
    await connection.execute(statement, parameters)


@functools.lru_cache(maxsize=64)
def _update_by_key(table: sa.Table, key: str, names: tuple[str, ...]) -> sa.Update:
    return (sa.update(table).where(table.c[key] == sa.bindparam(f"_{key}"))
            .values({name: sa.bindparam(name) for name in names if name != key}))


@functools.lru_cache(maxsize=64)
def _unnest_update(table: sa.Table, key: str, names: tuple[str, ...]) -> tuple[sa.TextClause, tuple[str, ...]]:
    arrays, values, json_columns = _array_parameters(table, list(names))
    assignments = ", ".join(f'"{name}" = {value}' for name, value in zip(names, values) if name != key)
    aliases = ", ".join(f"v{i}" for i in range(len(names)))
    sql = (f'UPDATE "{table.name}" SET {assignments} FROM unnest({", ".join(arrays)}) AS rows({aliases}) '
           f'WHERE "{table.name}"."{key}" = rows.v{names.index(key)}')
    return sa.text(sql), tuple(json_columns)


def any_of(session: AsyncSession, column, values) -> sa.ColumnElement[bool]:
    """`column IN values`. On PostgreSQL `column = ANY(<one array parameter>)`, whose text does
    not grow with the list (see `_unnest_insert` for why that matters)."""
    values = list(values)
    if is_postgresql(session):
        return column == sa.any_(sa.bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    return column.in_(values)
