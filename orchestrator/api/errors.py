"""Error answers: 422s that stay small and always encode, and the OpenAPI that says so.

FastAPI's own 422 handler echoes each error's `input` whole: a megabyte of it for a
megabyte body, and a 500 when the input cannot be written as JSON (invalid UTF-8 bytes,
NaN). Ours keeps the same shape (`detail`: a list of `{type, loc, msg, input, ...}`) with
`input` cut to `MAX_ECHOED_INPUT` characters of its JSON form and made encodable.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

MAX_ECHOED_INPUT = 200  # characters of an invalid value echoed back in a 422


def encodable(value: Any) -> Any:
    """`value` as plain JSON: bytes decoded leniently, NaN and infinities as their names."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): encodable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encodable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def short_input(value: Any) -> Any:
    """The input itself when small; otherwise the start of its JSON text, ending in '…'."""
    if isinstance(value, str):
        return value if len(value) <= MAX_ECHOED_INPUT else value[:MAX_ECHOED_INPUT] + "…"
    if isinstance(value, bytes):
        return short_input(value[: MAX_ECHOED_INPUT * 4].decode("utf-8", errors="replace"))
    if isinstance(value, (dict, list, tuple)):
        # Measured on a prefix: a huge container is never encoded whole just to be cut.
        text = json.dumps(encodable(_prefix(value)), ensure_ascii=False)
        return text[:MAX_ECHOED_INPUT] + "…" if len(text) > MAX_ECHOED_INPUT else encodable(value)
    return encodable(value)


def _prefix(value: Any, budget: int = MAX_ECHOED_INPUT) -> Any:
    """A copy of `value` with at most `budget` items at each level, 8 levels deep: enough to
    tell whether its JSON text is longer than `MAX_ECHOED_INPUT`, and to show its start."""

    def cut(item: Any, depth: int) -> Any:
        if depth > 8:
            return "…"
        if isinstance(item, dict):
            return {k: cut(v, depth + 1) for k, v in list(item.items())[:budget]}
        if isinstance(item, (list, tuple)):
            return [cut(v, depth + 1) for v in list(item)[:budget]]
        return item if not isinstance(item, (str, bytes)) else item[: MAX_ECHOED_INPUT + 1]

    return cut(value, 0)


def validation_errors(errors: list[dict]) -> list[dict]:
    answer = []
    for error in errors:
        error = dict(error)
        if "input" in error:
            error["input"] = short_input(error["input"])
        if "ctx" in error:
            error["ctx"] = {
                key: encodable(value)
                if isinstance(value, (int, float, str, bytes, dict, list, tuple)) or value is None
                else str(value)
                for key, value in error["ctx"].items()
            }
        error["loc"] = [encodable(part) for part in error.get("loc", ())]
        error.pop("url", None)
        answer.append(error)
    return answer


async def validation_error_answer(request: Request, error: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": validation_errors(list(error.errors()))}, status_code=422)
