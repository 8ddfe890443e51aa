"""Query and path parameter types the API shares: every one has bounds the databases can hold.

An unbounded `int` id was a 500 on SQLite beyond 2^63 (and on PostgreSQL for BIGINT); a
date in year 1 or 9999 overflowed when moved to UTC or when a day was added. These types
answer such input with a 422 that names the parameter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator

from orchestrator.clock import utc
from orchestrator.events.schemas import check_timezone

MAX_ROW_ID = 2**63 - 1  # BIGINT (PostgreSQL) and INTEGER (SQLite) both stop here
MAX_OFFSET = 1_000_000  # beyond this, page with the cursor (docs/api.md, "Pagination")
EARLIEST, LATEST = datetime(1900, 1, 1).year, datetime(2999, 12, 31).year


def within_supported_years(value: datetime | None) -> datetime | None:
    """Naive means UTC; the moment must fall in years 1900 to 2999."""
    if value is None:
        return None
    if not EARLIEST <= value.year <= LATEST:
        raise ValueError(f"must be between the years {EARLIEST} and {LATEST}")
    return utc(value)


Moment = Annotated[datetime, AfterValidator(within_supported_years)]
Zone = Annotated[str, AfterValidator(check_timezone)]  # an IANA name; anything else is a 422 naming the parameter
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"At most {MAX_OFFSET}; page further with `cursor`")]
