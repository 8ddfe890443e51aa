"""Durations as marketers write them: `90s`, `15m`, `1h`, `1h30m`, `3d`, `2w`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)\s*([smhdw])")
DURATION_PATTERN = r"^\s*(\d+\s*[smhdw]\s*)+$"
# Ten years: longer than any wait or window a campaign needs, and far from the point where
# adding it to a date leaves the calendar (year 9999) or timedelta's own range.
MAX_DURATION = timedelta(days=3650)


def parse_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("a duration is written like 30m, 1h, 3d or 1h30m")
    if isinstance(value, int):
        raise ValueError(f"{value} has no unit: write {value}s, {value}m, {value}h or {value}d")
    text = value.strip().lower()
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"'{value}' is not a duration: write it like 30m, 1h, 3d or 1h30m")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))
    if seconds <= 0:
        raise ValueError("a duration must be longer than zero")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"'{value}' is too long: a duration is at most {format_duration(MAX_DURATION)} (ten years)")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["1h", "3d", "1h30m"]}),
]
