"""PostgreSQL's plan for a statement the service ran: which index serves it, and whether it
sorts. Statements are captured as the service sends them, so a test checks the query the
code really makes, with its parameters."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa


@contextlib.contextmanager
def captured(engine, starting_with: str) -> Iterator[list[tuple[str, object]]]:
    """The (statement, parameters) the engine ran meanwhile that start with `starting_with`."""
    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith(starting_with):
            statements.append((statement, parameters))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", capture)


async def plan_of(engine, statement: str, parameters, *, priced_out: tuple[str, ...] = ()) -> str:
    """EXPLAIN (not run) of `statement`, with the planner settings named in `priced_out`
    (`enable_seqscan`, `enable_sort`, ...) off."""
    async with engine.connect() as connection:
        for setting in priced_out:
            await connection.exec_driver_sql(f"SET {setting} = off")
        rows = await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        return "\n".join(row[0] for row in rows)
