"""`GET /v1/conversions`: goal events credited to a message, newest first, paged by cursor.

The rows are written by `orchestrator/delivery/conversions.py`; this only lists them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from sqlmodel import col, select

from orchestrator.api.pagination import after, decode_cursor, encode_cursor, ordered
from orchestrator.api.parameters import Moment
from orchestrator.clock import UtcDatetime
from orchestrator.storage.feedback_models import Conversion
from orchestrator.storage.models import Customer
from orchestrator.web.dependencies import SessionDep

router = APIRouter(prefix="/v1", tags=["conversions"])
CONVERSION_ORDER = (col(Conversion.converted_at), col(Conversion.id))


class ConversionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    order_key: str
    user_id: str
    journey_id: str
    step_id: str | None
    channel: str
    template: str | None
    message_id: int
    enrollment_id: int
    event_id: int
    revenue: Decimal | None
    currency: str | None
    converted_at: UtcDatetime


class ConversionPage(BaseModel):
    items: list[ConversionPublic]
    next_cursor: str | None  # pass as `cursor` for the next page; null on the last page


@router.get("/conversions", response_model=ConversionPage)
async def list_conversions(
    session: SessionDep,
    journey: str | None = None,
    channel: str | None = None,
    since: Annotated[
        Moment | None, Query(alias="from", description="Converted at or after (ISO-8601, UTC if no offset)")
    ] = None,
    until: Annotated[Moment | None, Query(alias="to", description="Converted before")] = None,
    sort: Annotated[
        Literal["converted_at", "-converted_at"], Query(description="`converted_at`: oldest first")
    ] = "-converted_at",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000, description="`next_cursor` of the previous page")] = None,
) -> ConversionPage:
    """Conversions with the message, step and channel credited and the revenue.

    Served by `ix_conversions_converted` (converted_at, id), or `ix_conversions_journey`
    (journey_id, converted_at, id) for one journey; `channel` filters along the way."""
    direction = "asc" if sort == "converted_at" else "desc"
    kind = f"conversions{sort}"
    query = select(Conversion, Customer.user_id).join(Customer, col(Customer.id) == col(Conversion.customer_id))
    if journey:
        query = query.where(Conversion.journey_id == journey)
    if channel:
        query = query.where(Conversion.channel == channel)
    if since:
        query = query.where(col(Conversion.converted_at) >= since)
    if until:
        query = query.where(col(Conversion.converted_at) < until)
    if cursor is not None:
        query = query.where(after(CONVERSION_ORDER, decode_cursor(kind, cursor, timestamp_first=True), direction))
    rows = (await session.exec(query.order_by(*ordered(CONVERSION_ORDER, direction)).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        ConversionPublic.model_validate({**conversion.model_dump(), "user_id": user_id}) for conversion, user_id in rows
    ]
    last = rows[-1][0] if rows else None
    return ConversionPage(
        items=items, next_cursor=encode_cursor(kind, [last.converted_at, last.id]) if more and last else None
    )
