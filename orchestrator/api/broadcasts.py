"""Broadcasts over HTTP: create a draft, list, read with its KPIs, preview the audience,
and move it through its lifecycle (schedule, pause, resume, cancel; docs/broadcasts.md).

Thin: the body is the broadcast file's own model, so a body is checked exactly as a file
is; the work is in `orchestrator.broadcasts`. A move the state does not allow is a 409
naming the state the broadcast is in.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, Field

from orchestrator.broadcasts.as_journey import broadcast_journey_id
from orchestrator.broadcasts.audience import AudienceError
from orchestrator.broadcasts.format import BroadcastFile
from orchestrator.broadcasts.loader import from_body
from orchestrator.broadcasts.service import act, create_draft, get_broadcast, list_broadcasts, preview, progress
from orchestrator.broadcasts.states import TransitionRefused
from orchestrator.clock import UtcDatetime
from orchestrator.kpis.lift import holdout_lift
from orchestrator.kpis.report import message_kpis
from orchestrator.kpis.schemas import HoldoutLift, KpiRow
from orchestrator.kpis.scope import KpiScope
from orchestrator.storage.broadcast_models import Broadcast
from orchestrator.web.dependencies import RuntimeDep, SessionDep
from orchestrator.web.responses import CONFLICT, NOT_FOUND

router = APIRouter(prefix="/v1/broadcasts", tags=["broadcasts"])


class BroadcastSummary(BaseModel):
    id: str
    name: str | None
    state: str = Field(description="draft | scheduled | sending | paused | done | cancelled")
    state_reason: str | None = Field(description="Why it is in this state, when it moved by itself (a pause)")
    version: str
    priority: int
    channel: str
    starts_at: UtcDatetime | None = Field(description="When the audience snapshot is (or was) taken")
    snapshot_at: UtcDatetime | None
    recipients: int | None = Field(description="Customers in the snapshot; null before it")
    source_path: str | None = Field(description="The file it was loaded from; null when created through the API")
    progress: dict[str, int] = Field(description="Recipients made into messages (`materialized`), messages by status")


class BroadcastDetail(BroadcastSummary):
    definition: dict[str, Any]
    kpis: KpiRow | None = Field(description="The broadcast's messages, as `GET /v1/kpis?broadcast=<id>` counts them")
    lift: HoldoutLift | None


class PreviewAnswer(BaseModel):
    audience: int = Field(description="Customers in the audience now")
    sample: list[str] = Field(description="A few of their userIds")
    held_out: int = Field(description="In the holdout group: never messaged")
    no_consent: int = Field(description="No consent for the channel (or its fallback), or the address is suppressed")
    no_address: int = Field(description="No address on the channel (nor its fallback)")
    would_send: int
    channels: dict[str, int] = Field(description="Messages that would go out, by channel (fallback included)")


class Moved(BaseModel):
    id: str
    state: str


def summary(row: Broadcast) -> dict[str, Any]:
    return dict(
        id=row.id,
        name=row.source.get("name"),
        state=row.state,
        state_reason=row.state_reason,
        version=row.version,
        priority=row.priority,
        channel=row.source.get("channel"),
        starts_at=row.starts_at,
        snapshot_at=row.snapshot_at,
        recipients=row.recipients,
        source_path=row.source_path,
    )


async def _found(session, broadcast_id: str) -> Broadcast:
    row = await get_broadcast(session, broadcast_id)
    if row is None:
        raise HTTPException(404, f"no broadcast '{broadcast_id}'")
    return row


@router.get("", response_model=list[BroadcastSummary])
async def list_all(session: SessionDep) -> list[dict[str, Any]]:
    return [dict(summary(row), progress=await progress(session, row.id)) for row in await list_broadcasts(session)]


@router.post("", response_model=BroadcastSummary, status_code=201, responses=CONFLICT)
async def create(definition: BroadcastFile, session: SessionDep, runtime: RuntimeDep, response: Response) -> dict:
    """A new draft, or a new content for a draft of this id (200). A broadcast past draft
    keeps its content: 409."""
    loaded = from_body(definition.model_dump(mode="json", by_alias=True, exclude_none=True))
    async with session.begin():
        existed = await get_broadcast(session, loaded.definition.id) is not None
        if not await create_draft(session, loaded, runtime.clock.now()):
            row = await get_broadcast(session, loaded.definition.id)
            raise HTTPException(409, f"broadcast '{row.id}' is {row.state}: only a draft can be changed")
    if existed:
        response.status_code = 200
    return dict(summary(await _found(session, loaded.definition.id)), progress={"materialized": 0})


@router.get("/{broadcast_id}", response_model=BroadcastDetail, responses=NOT_FOUND)
async def read(broadcast_id: str, session: SessionDep) -> dict:
    """The broadcast, its progress, and its KPIs exactly as a journey's: sent, delivered,
    failed, clicked, conversions, CVR, revenue, and the holdout lift."""
    row = await _found(session, broadcast_id)
    journey_id = broadcast_journey_id(broadcast_id)
    rows = await message_kpis(session, KpiScope(journey=journey_id))
    lift = await holdout_lift(session, journey_id) if row.snapshot_at else None
    return dict(
        summary(row),
        definition=row.source,
        progress=await progress(session, broadcast_id),
        kpis=rows[0] if rows else None,
        lift=lift,
    )


@router.get("/{broadcast_id}/preview", response_model=PreviewAnswer, responses={**NOT_FOUND, **CONFLICT})
async def preview_audience(broadcast_id: str, session: SessionDep, runtime: RuntimeDep) -> dict:
    """Who would get it if the snapshot were taken now (the snapshot itself is taken when the schedule arrives)."""
    row = await _found(session, broadcast_id)
    try:
        return (await preview(session, row, runtime.settings.erasure_key)).as_dict()
    except AudienceError as error:
        raise HTTPException(409, str(error)) from None


async def _act(session, runtime, broadcast_id: str, action: str) -> dict:
    try:
        async with session.begin():
            moved = await act(session, broadcast_id, action, runtime.clock.now())
    except TransitionRefused as refused:
        raise HTTPException(404 if refused.state is None else 409, str(refused)) from None
    return {"id": moved.broadcast_id, "state": moved.state}


RESPONSES = {**NOT_FOUND, **CONFLICT}


@router.post("/{broadcast_id}/schedule", response_model=Moved, responses=RESPONSES)
async def schedule(broadcast_id: str, session: SessionDep, runtime: RuntimeDep) -> dict:
    """draft → scheduled: the worker takes the snapshot when the schedule arrives."""
    return await _act(session, runtime, broadcast_id, "schedule")


@router.post("/{broadcast_id}/pause", response_model=Moved, responses=RESPONSES)
async def pause(broadcast_id: str, session: SessionDep, runtime: RuntimeDep) -> dict:
    """scheduled or sending → paused: no new messages are made (those already queued still go)."""
    return await _act(session, runtime, broadcast_id, "pause")


@router.post("/{broadcast_id}/resume", response_model=Moved, responses=RESPONSES)
async def resume(broadcast_id: str, session: SessionDep, runtime: RuntimeDep) -> dict:
    """paused → sending (after its snapshot) or scheduled (before)."""
    return await _act(session, runtime, broadcast_id, "resume")


@router.post("/{broadcast_id}/cancel", response_model=Moved, responses=RESPONSES)
async def cancel(broadcast_id: str, session: SessionDep, runtime: RuntimeDep) -> dict:
    """Any state but done → cancelled, for good; its queued messages are skipped."""
    return await _act(session, runtime, broadcast_id, "cancel")
