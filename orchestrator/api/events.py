"""Segment-compatible ingestion: /v1/identify, /v1/track, /v1/page, /v1/screen, /v1/group,
/v1/alias and /v1/batch (docs/api.md, "Segment compatibility").

Handlers validate, call the ingest service and answer only after the commit. Single calls
go through a group commit (`orchestrator/events/group_commit.py`): concurrent calls share
a transaction, and each still answers only after the commit that holds it.
"""

from __future__ import annotations

import json
from functools import partial

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel

from orchestrator.config import get_settings
from orchestrator.events.group_commit import GroupCommit
from orchestrator.events.ingest import Accepted, ingest_committed
from orchestrator.events.schemas import (
    AliasCall,
    AnyCall,
    GroupCall,
    IdentifyCall,
    PageCall,
    ScreenCall,
    TrackCall,
    batch_model,
)
from orchestrator.metrics import record_ingested, record_withheld_traits
from orchestrator.web.responses import BODY_ERRORS

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


def _response(accepted: list[Accepted]) -> Response:
    """An `IngestResponse`, written directly: validating our own answer through the response
    model cost about a tenth of a single event's CPU (bench/results/HISTORY.md, ingest)."""
    duplicates = sum(a.duplicate for a in accepted)
    return Response(
        json.dumps(
            {
                "success": True,
                "accepted": len(accepted) - duplicates,
                "duplicates": duplicates,
                "results": [{"messageId": a.message_id, "duplicate": a.duplicate} for a in accepted],
            }
        ),
        media_type="application/json",
    )


def intake_of(request: Request) -> GroupCommit:
    """The app's group commit for single calls, made on first use (`close_intake` ends it).
    Not a FastAPI dependency: each dependency costs /v1/track measurable CPU."""
    state = request.app.state
    if getattr(state, "event_intake", None) is None:
        state.event_intake = GroupCommit(partial(ingest_committed, state.runtime))
    return state.event_intake


async def close_intake(state) -> None:
    intake = getattr(state, "event_intake", None)
    if intake is not None:
        await intake.aclose()


def _answer(calls: list, accepted: list[Accepted]) -> Response:
    record_ingested((call.type, result.duplicate) for call, result in zip(calls, accepted))
    record_withheld_traits(
        (call.withheld_traits, result.duplicate) for call, result in zip(calls, accepted) if call.type == "identify"
    )
    return _response(accepted)


async def accept_single(request: Request, call: AnyCall) -> Response:
    return _answer([call], [await intake_of(request).submit(call)])


def check_call_sizes(calls: list[AnyCall], limit: int, body_size: int | None = None) -> None:
    """The per-call limit inside a batch (the body's own limit is checked while reading it).
    A body no larger than one call's limit cannot hold an oversized call: nothing to measure."""
    if body_size is not None and body_size <= limit:
        return
    for index, call in enumerate(calls):
        size = len(call.__pydantic_serializer__.to_json(call, exclude_none=True))
        if size > limit:
            raise HTTPException(
                413,
                f"batch[{index}] is {size} bytes as JSON; one call may be at most {limit} bytes (docs/api.md, Limits)",
            )


async def accept_batch(request: Request, call, body_size: int | None = None) -> Response:
    check_call_sizes(call.batch, request.app.state.runtime.settings.max_call_bytes, body_size)
    return _answer(call.batch, await ingest_committed(request.app.state.runtime, call.batch))


# Under load these are served by `orchestrator/api/direct_ingestion.py`, which calls the
# same handlers; the routes document them (OpenAPI) and serve them without it.
@router.post("/track", response_model=IngestResponse, responses=BODY_ERRORS)
async def track(call: TrackCall, request: Request) -> Response:
    """A customer did something. `messageId` makes it idempotent."""
    return await accept_single(request, call)


@router.post("/identify", response_model=IngestResponse, responses=BODY_ERRORS)
async def identify(call: IdentifyCall, request: Request) -> Response:
    """Who a customer is: email, phone, whatsapp, locale, timezone, consent and any other trait.
    With both `userId` and `anonymousId`, it also records that the visitor is this customer."""
    return await accept_single(request, call)


@router.post("/page", response_model=IngestResponse, responses=BODY_ERRORS)
async def page(call: PageCall, request: Request) -> Response:
    """A page view: stored as an event (name, properties such as url and referrer, context)."""
    return await accept_single(request, call)


@router.post("/screen", response_model=IngestResponse, responses=BODY_ERRORS)
async def screen(call: ScreenCall, request: Request) -> Response:
    """An app screen view: stored as an event, like a page view."""
    return await accept_single(request, call)


@router.post("/group", response_model=IngestResponse, responses=BODY_ERRORS)
async def group(call: GroupCall, request: Request) -> Response:
    """The customer belongs to a group (an account, a company): stored as an event."""
    return await accept_single(request, call)


@router.post("/alias", response_model=IngestResponse, responses=BODY_ERRORS)
async def alias(call: AliasCall, request: Request) -> Response:
    """`previousId` is the same person as `userId`: the link is recorded."""
    return await accept_single(request, call)


@router.post("/batch", response_model=IngestResponse, responses=BODY_ERRORS)
async def batch(call: BatchCall, request: Request) -> Response:  # type: ignore[valid-type]
    """Many calls of any type at once, all or nothing: one invalid item rejects the whole batch."""
    return await accept_batch(request, call)
