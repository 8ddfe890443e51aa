"""Segments: each declared segment with its members, its size over time (a Chart.js line)
and a live preview of who matches it now.

The preview evaluates the segment's conditions over every customer (hundreds of
milliseconds at a few hundred thousand), so it is its own request, which the page asks for
once it is shown (htmx, `hx-trigger="load"`): the page itself reads only what the worker
stored."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from orchestrator.console.api_client import ApiRefused
from orchestrator.console.context import ConsoleDep, refusal_page

router = APIRouter()
PREVIEW_SAMPLE = 20


@router.get("/segments")
async def segments(console_: ConsoleDep) -> Response:
    try:
        listed = await console_.api.get("/v1/segments")
    except ApiRefused as error:
        return refusal_page(console_, error)
    return console_.render("segments.html", listed=listed)


@router.get("/segments/{segment_id}")
async def segment(segment_id: str, console_: ConsoleDep) -> Response:
    try:
        detail = await console_.api.get(f"/v1/segments/{segment_id}")
    except ApiRefused as error:
        return refusal_page(console_, error)
    chart = {
        "labels": [s["at"][:16].replace("T", " ") for s in detail["size_history"]],
        "members": [s["members"] for s in detail["size_history"]],
    }
    return console_.render("segment.html", segment=detail, chart=chart)


@router.get("/segments/{segment_id}/preview")
async def segment_preview(segment_id: str, console_: ConsoleDep) -> Response:
    try:
        preview = await console_.api.get(f"/v1/segments/{segment_id}/preview", {"limit": PREVIEW_SAMPLE})
    except ApiRefused as error:
        return refusal_page(console_, error)
    return console_.render("_segment_preview.html", preview=preview)
