"""Broadcasts: state and counts; a broadcast's KPIs, holdout lift and progress; schedule,
pause, resume and cancel through the same API (and so the same state rules) as curl."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from orchestrator.broadcasts.states import USER_ACTIONS
from orchestrator.console.api_client import ApiRefused
from orchestrator.console.context import ConsoleDep, CsrfChecked, refusal_page

router = APIRouter()
WRITERS = ("admin", "marketer")  # MARKETING's write roles in orchestrator/web/access.py
# The buttons a broadcast in each state offers (the API refuses the others anyway).
ACTIONS_IN = {
    "draft": ("schedule", "cancel"),
    "scheduled": ("pause", "cancel"),
    "sending": ("pause", "cancel"),
    "paused": ("resume", "cancel"),
}


@router.get("/broadcasts")
async def broadcasts(console_: ConsoleDep, notice: str | None = None) -> Response:
    try:
        listed = await console_.api.get("/v1/broadcasts")
    except ApiRefused as error:
        return refusal_page(console_, error)
    return console_.render(
        "broadcasts.html",
        broadcasts=listed,
        may_write=console_.session.may_write(*WRITERS),
        actions=ACTIONS_IN,
        notice=notice,
    )


@router.post("/broadcasts/{broadcast_id}/{action}", dependencies=[CsrfChecked])
async def move(broadcast_id: str, action: str, console_: ConsoleDep) -> Response:
    if action not in USER_ACTIONS:
        return console_.back("/broadcasts")
    try:
        answer = await console_.api.post(f"/v1/broadcasts/{broadcast_id}/{action}")
    except ApiRefused as error:
        return refusal_page(console_, error)
    return console_.back(f"/broadcasts/{broadcast_id}?notice={broadcast_id}+is+{answer['state']}")


@router.get("/broadcasts/{broadcast_id}")
async def broadcast(broadcast_id: str, console_: ConsoleDep, notice: str | None = None) -> Response:
    try:
        detail = await console_.api.get(f"/v1/broadcasts/{broadcast_id}")
    except ApiRefused as error:
        return refusal_page(console_, error)
    return console_.render(
        "broadcast.html",
        b=detail,
        k=detail["kpis"] or {},
        may_write=console_.session.may_write(*WRITERS),
        actions=ACTIONS_IN.get(detail["state"], ()),
        notice=notice,
    )
