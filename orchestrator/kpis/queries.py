"""Message KPIs per group, read from the daily rollups: two GROUP BY queries.

Whole UTC days of the range come from `kpi_daily` / `kpi_daily_skips` (hundreds of rows
however many messages there are); the parts of days at either end of a range that does
not start or end at midnight are counted from the messages themselves, cell by cell, the
same way the rollup was (`cells.py`). Both kinds of cell are summed per requested group in
one query, so message rows never travel to Python.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.kpis.cells import KEY_COLUMNS, MEASURES, cell_totals, skip_cells
from orchestrator.kpis.scope import KpiScope, column_of, day_text, message_conditions, split_by_whole_days
from orchestrator.storage.kpi_models import KpiDailyCell, KpiDailySkip

GroupKey = tuple[Any, ...]
cells_table, skips_table = KpiDailyCell.__table__, KpiDailySkip.__table__


def _rollup_part(table: sa.Table, scope: KpiScope, whole_days, columns: list[str]) -> sa.Select:
    c = table.c
    conditions = [c[column] == value for column, value in scope.equality_filters().items()]
    first, end = whole_days
    if first is not None:
        conditions.append(c.day >= first.date())
    if end is not None:
        conditions.append(c.day < end.date())
    return sa.select(*(c[name] for name in columns)).where(*conditions)


def _cells(scope: KpiScope, dialect: str, table: sa.Table, columns: list[str], count_edge) -> sa.Subquery:
    whole_days, edges = split_by_whole_days(scope.since, scope.until)
    parts = [] if whole_days is None else [_rollup_part(table, scope, whole_days, columns)]
    for start, end in edges:
        parts.append(count_edge(message_conditions(replace(scope, since=start, until=end)), start))
    return (sa.union_all(*parts) if len(parts) > 1 else parts[0]).subquery("cells")


def _group_columns(scope: KpiScope, cells: sa.Subquery) -> list:
    return [cells.c[column_of(name)].label(name) for name in scope.group_by]


def _key(row, scope: KpiScope) -> GroupKey:
    """Group values as the API shows them: days as YYYY-MM-DD, no step or template as None."""
    return tuple(day_text(row[name]) if name == "day" else (row[name] or None) for name in scope.group_by)


async def message_totals(session: AsyncSession, scope: KpiScope) -> dict[GroupKey, dict[str, Any]]:
    dialect = session.get_bind().dialect.name
    cells = _cells(
        scope,
        dialect,
        cells_table,
        [*KEY_COLUMNS, *MEASURES],
        lambda conditions, since: cell_totals(dialect, conditions, since),
    )
    groups = _group_columns(scope, cells)
    query = sa.select(*groups, *(sa.func.sum(cells.c[name]).label(name) for name in MEASURES)).group_by(*groups)
    totals = {}
    for row in (await session.exec(query)).mappings():
        if not scope.group_by and row["messages"] is None:
            continue  # no cell at all: the caller shows zeros
        totals[_key(row, scope)] = dict(row)
    return totals


async def skip_reasons(session: AsyncSession, scope: KpiScope) -> dict[GroupKey, dict[str, int]]:
    dialect = session.get_bind().dialect.name
    cells = _cells(
        scope,
        dialect,
        skips_table,
        [*KEY_COLUMNS, "reason", "count"],
        lambda conditions, since: skip_cells(dialect, conditions),
    )
    groups = _group_columns(scope, cells)
    query = sa.select(*groups, cells.c.reason, sa.func.sum(cells.c["count"]).label("count")).group_by(
        *groups, cells.c.reason
    )
    reasons: dict[GroupKey, dict[str, int]] = {}
    for row in (await session.exec(query)).mappings():
        reasons.setdefault(_key(row, scope), {})[row["reason"]] = int(row["count"])
    return reasons


def all_keys(*tables) -> list[GroupKey]:
    keys = set().union(*tables)
    return sorted(keys, key=lambda key: tuple((value is None, str(value or "")) for value in key))
