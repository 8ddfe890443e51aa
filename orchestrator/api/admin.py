"""Simulated time for demos and acceptance tests (only when the clock is simulated)."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from orchestrator.clock import SimulatedClock
from orchestrator.engine.simulated_time import advance_simulated_time
from orchestrator.web.dependencies import RuntimeDep
from orchestrator.web.responses import CONFLICT

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class Advance(BaseModel):
    seconds: float = Field(gt=0, le=10 * 365 * 86400, allow_inf_nan=False)


class ClockState(BaseModel):
    now: datetime
    simulated: bool
    work_done: int = 0


@router.get("/clock", response_model=ClockState)
async def read_clock(runtime: RuntimeDep) -> ClockState:
    return ClockState(now=runtime.clock.now(), simulated=runtime.clock.simulated)


@router.post("/clock/advance", response_model=ClockState, responses=CONFLICT)
async def advance_clock(body: Advance, request: Request, runtime: RuntimeDep) -> ClockState:
    """Move simulated time forward, stopping at each due time on the way (enrollments, queued
    messages, broadcasts) to run the work due then (so every message carries the time it was
    due), then refresh segments (and run what
    their entries started) and the KPI rollups (simulated time passed their intervals too),
    so what is read right after shows what it did."""
    if not isinstance(runtime.clock, SimulatedClock):
        raise HTTPException(409, "the clock is real; start with ORCHESTRATOR_SIMULATED_CLOCK=true to control it")
    loop = getattr(request.app.state, "worker_loop", None)
    now, done = await advance_simulated_time(runtime, timedelta(seconds=body.seconds), loop.run_due if loop else None)
    if loop:
        await loop.refresh_segments()
        done += await loop.run_due()
        await loop.refresh_kpi_rollups()
    return ClockState(now=now, simulated=True, work_done=done)
