"""Journeys at run time: list with versions and counts, reload from files (with the segments), pause, resume."""

from __future__ import annotations

from collections import Counter, defaultdict

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlmodel import select

from orchestrator.journeys.live import refresh_catalog, set_paused
from orchestrator.kpis.enrollment_counts import enrollment_counts
from orchestrator.startup import reload_journeys_and_segments
from orchestrator.storage.models import JourneyState, JourneyVersion
from orchestrator.web.dependencies import RuntimeDep, SessionDep
from orchestrator.web.responses import NOT_FOUND

router = APIRouter(prefix="/v1/journeys", tags=["journeys"])


class JourneySummary(BaseModel):
    id: str
    name: str | None
    state: str  # active | paused | retired
    current_version: str | None
    versions: list[str]
    enrollments: dict[str, int]  # by status
    enrollments_by_version: dict[str, int]


class ReloadAnswer(BaseModel):
    applied: bool
    versions: dict[str, str] = Field(default={}, description="Journey id → its current version")
    segments: dict[str, str] = Field(default={}, description="Segment id → its current version")
    errors: list[dict] = []


@router.get("", response_model=list[JourneySummary])
async def list_journeys(session: SessionDep, runtime: RuntimeDep) -> list[JourneySummary]:
    await refresh_catalog(runtime, force=True)
    states = (await session.exec(select(JourneyState).order_by(JourneyState.journey_id))).all()
    versions = (
        await session.exec(select(JourneyVersion.journey_id, JourneyVersion.version).order_by(JourneyVersion.id))
    ).all()
    # Kept by the database's triggers as enrollments change, exact at commit: no scan of the enrollments.
    by_status: dict[str, Counter] = defaultdict(Counter)
    by_version: dict[str, Counter] = defaultdict(Counter)
    for (journey_id, version, status), n in (await enrollment_counts(session)).items():
        by_status[journey_id][status] += n
        by_version[journey_id][version] += n
    summaries = []
    for state in states:
        compiled = runtime.catalog.current.get(state.journey_id)
        summaries.append(
            JourneySummary(
                id=state.journey_id,
                name=compiled.definition.name if compiled else None,
                state="retired" if state.current_version is None else ("paused" if state.paused else "active"),
                current_version=state.current_version,
                versions=[v for j, v in versions if j == state.journey_id],
                enrollments=dict(sorted(by_status[state.journey_id].items())),
                enrollments_by_version=dict(sorted(by_version[state.journey_id].items())),
            )
        )
    return summaries


RELOAD_REFUSED = {
    422: {
        "description": (
            "An invalid journey or segment file: `detail` is this answer with `applied` false and the errors"
        )
    }
}


async def reload_answer(runtime) -> ReloadAnswer:
    """Journeys and segments reloaded together (both routes answer this); refused with 422."""
    result = await reload_journeys_and_segments(runtime)
    answer = ReloadAnswer(
        applied=result.applied,
        versions=result.versions,
        segments=result.segments,
        errors=[e.__dict__ | {"text": str(e)} for e in result.errors],
    )
    if not result.applied:
        raise HTTPException(422, answer.model_dump())
    return answer


@router.post("/reload", response_model=ReloadAnswer, responses=RELOAD_REFUSED)
async def reload(runtime: RuntimeDep) -> ReloadAnswer:
    """Re-read `journeys/` and `segments/`; an invalid change is refused (422) and the old
    versions keep running."""
    return await reload_answer(runtime)


async def _pause(runtime, journey_id: str, paused: bool) -> dict:
    if not await set_paused(runtime, journey_id, paused):
        raise HTTPException(404, f"no journey '{journey_id}'")
    return {"id": journey_id, "state": "paused" if paused else "active"}


@router.post("/{journey_id}/pause", responses=NOT_FOUND)
async def pause(journey_id: str, runtime: RuntimeDep) -> dict:
    """No new entrants; running enrollments hold at their next send."""
    return await _pause(runtime, journey_id, True)


@router.post("/{journey_id}/resume", responses=NOT_FOUND)
async def resume(journey_id: str, runtime: RuntimeDep) -> dict:
    return await _pause(runtime, journey_id, False)
