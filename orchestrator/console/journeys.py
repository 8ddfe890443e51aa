"""Journeys: state, version and counts; a journey's steps with live counts and its funnel;
pause, resume and reload, through the same API (and so the same validation) as curl."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from orchestrator.console.api_client import ApiRefused
from orchestrator.console.context import ConsoleDep, CsrfChecked, refusal_page

router = APIRouter()
WRITERS = ("admin", "marketer")  # MARKETING's write roles in orchestrator/web/access.py


@router.get("/journeys")
async def journeys(console_: ConsoleDep, notice: str | None = None) -> Response:
    try:
        listed = await console_.api.get("/v1/journeys")
    except ApiRefused as error:
        return refusal_page(console_, error)
    return console_.render(
        "journeys.html", journeys=listed, may_write=console_.session.may_write(*WRITERS), notice=notice, reload=None
    )


@router.post("/journeys/reload", dependencies=[CsrfChecked])
async def reload(console_: ConsoleDep) -> Response:
    try:
        answer = await console_.api.post("/v1/journeys/reload")
        listed = await console_.api.get("/v1/journeys")
    except ApiRefused as error:
        return refusal_page(console_, error)
    return console_.render(
        "journeys.html", journeys=listed, may_write=console_.session.may_write(*WRITERS), notice=None, reload=answer
    )


@router.post("/journeys/{journey_id}/{action}", dependencies=[CsrfChecked])
async def pause_or_resume(journey_id: str, action: str, console_: ConsoleDep) -> Response:
    if action not in ("pause", "resume"):
        return console_.back("/journeys")
    try:
        await console_.api.post(f"/v1/journeys/{journey_id}/{action}")
    except ApiRefused as error:
        return refusal_page(console_, error)
    return console_.back(f"/journeys?notice={journey_id}+{action}d")


@router.get("/journeys/{journey_id}")
async def journey(journey_id: str, console_: ConsoleDep) -> Response:
    try:
        stats = await console_.api.get(f"/v1/journeys/{journey_id}/stats")
        kpis = await console_.api.get("/v1/kpis", {"journey": journey_id})
    except ApiRefused as error:
        return refusal_page(console_, error)
    total = kpis["rows"][0] if kpis["rows"] else {}
    sends = [s for s in stats["steps"] if s["kind"] == "send"]
    funnel = [
        ("entered", stats["entered"]),
        ("sent", sum(s["sent"] or 0 for s in sends)),
        ("delivered", sum(s["delivered"] or 0 for s in sends)),
        ("clicked or replied", (total.get("clicked") or 0) + (total.get("replied") or 0)),
        ("converted", stats["goal_reached"]),
    ]
    return console_.render("journey.html", stats=stats, funnel=funnel, top=max([n for _, n in funnel] + [1]))
