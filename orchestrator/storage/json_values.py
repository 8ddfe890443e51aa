"""What a JSON column can hold on every database we run on.

Python's `json` accepts `NaN` and `Infinity` and strings with NUL characters; PostgreSQL
refuses all three (JSONB has no NaN, text has no NUL), so such a value would be a 500 at
commit on PostgreSQL and a silent difference on SQLite. Values from outside are checked at
the edge with `unstorable`, which names the first offending place.
"""

from __future__ import annotations

import math
from typing import Any

MAX_JSON_DEPTH = 32  # levels of objects and arrays in one stored value


def unstorable(value: Any, path: str = "", depth: int = 0) -> str | None:
    """None when `value` can be stored; otherwise where and why not, e.g. "items[2].price: NaN is not JSON"."""
    if isinstance(value, float):
        return (
            None
            if math.isfinite(value)
            else f"{path or 'value'}: {value} is not JSON (NaN and infinities are not numbers there)"
        )
    if isinstance(value, str):
        return f"{path or 'value'}: NUL characters cannot be stored" if "\x00" in value else None
    if isinstance(value, (dict, list)):
        if depth >= MAX_JSON_DEPTH:
            return f"{path or 'value'}: nested more than {MAX_JSON_DEPTH} levels deep"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and "\x00" in key:
                return f"{path or 'value'}: NUL characters cannot be stored, not even in a key"
            where = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
            problem = unstorable(item, where, depth + 1)
            if problem:
                return problem
    return None


def check_storable(value: Any) -> Any:
    """A pydantic `AfterValidator`: the value unchanged, or a ValueError naming what is wrong."""
    problem = unstorable(value)
    if problem:
        raise ValueError(problem)
    return value


def check_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL characters cannot be stored")
    return value
