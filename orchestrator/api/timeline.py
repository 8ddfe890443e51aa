"""`GET /v1/customers/{userId}/timeline`: one customer's history across channels."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict
from sqlmodel import select

from orchestrator.customers.timeline import customer_timeline
from orchestrator.storage.models import Customer
from orchestrator.web.dependencies import SessionDep
from orchestrator.web.responses import NOT_FOUND

router = APIRouter(prefix="/v1/customers", tags=["customers and messages"])


class TimelineEntryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    kind: str
    summary: str
    channel: str | None
    journey_id: str | None
    step_id: str | None
    message_id: int | None
    enrollment_id: int | None
    source: str
    source_id: int


class Timeline(BaseModel):
    user_id: str
    items: list[TimelineEntryPublic]
    limit: int
    offset: int
    order: str
    has_more: bool


@router.get("/{user_id}/timeline", response_model=Timeline, responses=NOT_FOUND)
async def get_timeline(
    user_id: str,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    order: Annotated[Literal["asc", "desc"], Query(description="asc: oldest first; desc: newest first")] = "asc",
) -> Timeline:
    """Events, messages and their statuses, replies, consent changes, journeys and conversions, in time order."""
    customer_id = (await session.exec(select(Customer.id).where(Customer.user_id == user_id))).first()
    if customer_id is None:
        raise HTTPException(404, f"no customer with userId '{user_id}'")
    page = await customer_timeline(session, customer_id, limit=limit, offset=offset, newest_first=order == "desc")
    return Timeline(
        user_id=user_id,
        items=[TimelineEntryPublic.model_validate(e) for e in page.entries],
        limit=limit,
        offset=offset,
        order=order,
        has_more=page.has_more,
    )
