"""Segments: what is declared, their members and size over time, and a live preview."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from orchestrator.api.journeys import RELOAD_REFUSED, ReloadAnswer, reload_answer
from orchestrator.clock import UtcDatetime
from orchestrator.journeys.live import refresh_catalog
from orchestrator.segments.loader import LoadedSegment
from orchestrator.segments.membership import member_counts, recent_changes, size_history
from orchestrator.segments.preview import preview_segment
from orchestrator.web.dependencies import RuntimeDep, SessionDep
from orchestrator.web.responses import NOT_FOUND

router = APIRouter(prefix="/v1/segments", tags=["segments"])


class SegmentSummary(BaseModel):
    id: str
    name: str
    description: str | None
    version: str
    file: str
    members: int = Field(description="Current members, as the worker last evaluated them")


class SegmentList(BaseModel):
    segments: list[SegmentSummary]
    errors: list[str] = Field(description="Files that did not load, as file:line: key: problem")


class SizeSample(BaseModel):
    at: UtcDatetime
    members: int


class MembershipChange(BaseModel):
    at: UtcDatetime
    user_id: str
    change: str = Field(description="entered | left")


class SegmentDetail(SegmentSummary):
    where: dict[str, Any] = Field(description="The condition, as declared")
    size_history: list[SizeSample] = Field(description="Size after each sweep, oldest first")
    recent_changes: list[MembershipChange] = Field(description="Latest entries and exits, newest first")


class SampleCustomerOut(BaseModel):
    user_id: str
    email: str | None
    phone: str | None
    locale: str | None
    timezone: str | None


class PreviewOut(BaseModel):
    segment: str
    evaluated_at: UtcDatetime
    count: int = Field(description="Customers matching the segment now")
    sample: list[SampleCustomerOut]


def _segment(runtime, segment_id: str) -> LoadedSegment:
    segment = runtime.segments.segments.get(segment_id)
    if segment is None:
        raise HTTPException(404, f"no segment '{segment_id}' (segments are files under segments/)")
    return segment


def _summary(segment: LoadedSegment, members: int) -> dict[str, Any]:
    return dict(
        id=segment.id,
        name=segment.name,
        description=segment.definition.description,
        version=segment.version,
        file=str(segment.path),
        members=members,
    )


@router.get("", response_model=SegmentList)
async def list_segments(session: SessionDep, runtime: RuntimeDep) -> SegmentList:
    await refresh_catalog(runtime)  # a reload through another process, within a few seconds
    counts = await member_counts(session)
    return SegmentList(
        segments=[SegmentSummary(**_summary(s, counts.get(s.id, 0))) for s in runtime.segments.segments.values()],
        errors=[str(e) for e in runtime.segments.errors],
    )


@router.get("/{segment_id}", response_model=SegmentDetail, responses=NOT_FOUND)
async def get_segment(
    segment_id: str,
    session: SessionDep,
    runtime: RuntimeDep,
    samples: Annotated[int, Query(ge=1, le=1000, description="How many size samples, the latest")] = 200,
) -> SegmentDetail:
    await refresh_catalog(runtime)
    segment = _segment(runtime, segment_id)
    counts = await member_counts(session, segment.id)
    return SegmentDetail(
        **_summary(segment, counts.get(segment.id, 0)),
        where=segment.definition.where.model_dump(by_alias=True, exclude_none=True, mode="json"),
        size_history=[SizeSample(at=at, members=n) for at, n in await size_history(session, segment.id, samples)],
        recent_changes=[
            MembershipChange(at=at, user_id=user, change=change)
            for at, user, change in await recent_changes(session, segment.id)
        ],
    )


@router.get("/{segment_id}/preview", response_model=PreviewOut, responses=NOT_FOUND)
async def preview(
    segment_id: str,
    session: SessionDep,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=0, le=500, description="How many matching customers to show")] = 20,
) -> PreviewOut:
    """Who matches the segment now, evaluated live (the membership table may be a round behind)."""
    segment = _segment(runtime, segment_id)
    found = await preview_segment(session, segment, runtime.clock.now(), limit)
    return PreviewOut(
        segment=found.segment_id,
        evaluated_at=found.evaluated_at,
        count=found.count,
        sample=[SampleCustomerOut(**vars(c)) for c in found.sample],
    )


@router.post("/reload", response_model=ReloadAnswer, responses=RELOAD_REFUSED)
async def reload(runtime: RuntimeDep) -> ReloadAnswer:
    """Re-read `segments/` with `journeys/` (the same reload as `POST /v1/journeys/reload`); an
    invalid file in either is refused (422) and the segments evaluated so far stay."""
    return await reload_answer(runtime)
