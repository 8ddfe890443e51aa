"""`GET /metrics` for Prometheus: process counters plus database gauges taken at scrape time.

Included with the MONITORING policy (admin or ops key): the aggregates scan the messages
and enrollments tables, so anonymous callers must not be able to run them at will.
Prometheus sends the key with `authorization: {type: Bearer, credentials_file: ...}`.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from orchestrator.metrics import CONTENT_TYPE_LATEST, render, take_snapshot
from orchestrator.web.dependencies import RuntimeDep, SessionDep

router = APIRouter(tags=["monitoring"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(session: SessionDep, runtime: RuntimeDep) -> Response:
    snapshot = await take_snapshot(session, runtime.clock.now())
    return Response(render(snapshot), media_type=CONTENT_TYPE_LATEST)
