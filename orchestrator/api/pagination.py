"""Keyset pagination with opaque cursors (docs/api.md, "Pagination").

A page ends with `next_cursor`: the sort key of its last row, encoded. The next page is the
rows strictly after that key in the same order, `WHERE (sort_column, id) > (:value, :id)`,
which an index on (sort_column, id) answers by seeking, however deep the page: OFFSET
would read and throw away every row before it. A cursor names its list and order, so a
cursor from one list is refused by another (422 naming `cursor`) instead of paging oddly.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from fastapi.exceptions import RequestValidationError

from orchestrator.clock import utc

Direction = Literal["asc", "desc"]


def encode_cursor(kind: str, values: list[Any]) -> str:
    plain = [value.isoformat() if isinstance(value, datetime) else value for value in values]
    return base64.urlsafe_b64encode(json.dumps([kind, *plain], separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, *, timestamp_first: bool) -> list[Any]:
    """The values `encode_cursor(kind, ...)` encoded, or a 422 naming the `cursor` parameter."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(decoded, list) or len(decoded) < 2 or decoded[0] != kind:
            raise ValueError(kind)
        values = decoded[1:]
        if timestamp_first:
            values[0] = utc(datetime.fromisoformat(values[0]))
        if not isinstance(values[-1], int) or isinstance(values[-1], bool):
            raise ValueError("id")
        return values
    except (ValueError, TypeError, IndexError, binascii.Error, UnicodeDecodeError):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "cursor"),
                    "input": cursor[:200],
                    "msg": "not a cursor of this list and order: pass the next_cursor of the previous page unchanged",
                }
            ]
        ) from None


def after(columns: tuple, values: list[Any], direction: Direction) -> sa.ColumnElement[bool]:
    """Rows strictly past `values` in the order of `columns`: a row-value comparison, which
    PostgreSQL and SQLite both answer with a seek on an index over those columns."""
    # Each value bound with its column's type: SQLite compares timestamps as stored text.
    left, right = sa.tuple_(*columns), sa.tuple_(*(sa.literal(v, c.type) for c, v in zip(columns, values)))
    return left > right if direction == "asc" else left < right


def ordered(columns: tuple, direction: Direction) -> list:
    return [column.asc() if direction == "asc" else column.desc() for column in columns]
