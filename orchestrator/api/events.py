"""Segment-compatible ingestion: /v1/identify, /v1/track, /v1/batch.

Handlers validate, call the ingest service and answer only after the commit.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from orchestrator.api.dependencies import RuntimeDep, SessionDep
from orchestrator.events.ingest import Accepted, ingest
from orchestrator.events.schemas import IdentifyCall, TrackCall, batch_model
from orchestrator.config import get_settings
from orchestrator.metrics import record_ingested

router = APIRouter(prefix="/v1", tags=["events"])
BatchCall = batch_model(get_settings().max_batch_events)


class CallResult(BaseModel):
    messageId: str
    duplicate: bool


class IngestResponse(BaseModel):
    success: bool = True
    accepted: int
    duplicates: int
    results: list[CallResult]


def _response(accepted: list[Accepted]) -> IngestResponse:
    duplicates = sum(a.duplicate for a in accepted)
    return IngestResponse(
        accepted=len(accepted) - duplicates,
        duplicates=duplicates,
        results=[CallResult(messageId=a.message_id, duplicate=a.duplicate) for a in accepted],
    )


async def _ingest(session: SessionDep, runtime: RuntimeDep, calls: list) -> IngestResponse:
    async with session.begin():
        accepted = await ingest(session, runtime, calls)
    record_ingested((call.type, result.duplicate) for call, result in zip(calls, accepted))
    return _response(accepted)


@router.post("/track", response_model=IngestResponse)
async def track(call: TrackCall, session: SessionDep, runtime: RuntimeDep) -> IngestResponse:
    """A customer did something. `messageId` makes it idempotent."""
    return await _ingest(session, runtime, [call])


@router.post("/identify", response_model=IngestResponse)
async def identify(call: IdentifyCall, session: SessionDep, runtime: RuntimeDep) -> IngestResponse:
    """Who a customer is: email, phone, whatsapp, locale, timezone and any other trait."""
    return await _ingest(session, runtime, [call])


@router.post("/batch", response_model=IngestResponse)
async def batch(call: BatchCall, session: SessionDep, runtime: RuntimeDep) -> IngestResponse:  # type: ignore[valid-type]
    """Many calls at once, all or nothing: one invalid item rejects the whole batch."""
    return await _ingest(session, runtime, call.batch)
