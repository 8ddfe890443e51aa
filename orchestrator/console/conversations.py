"""Conversations: an inbox that updates live, a thread with the customer's consent and
WhatsApp window, and an agent's reply (refused by the API when consent or the window forbid)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response, StreamingResponse

from orchestrator.console.api_client import ApiRefused
from orchestrator.console.context import ConsoleDep, CsrfChecked, refusal_page

router = APIRouter()
POLL_SECONDS = 1.0  # how often the live inbox asks the API whether anything changed
STREAM_SECONDS = 300  # then the browser reconnects (EventSource does so by itself)


async def _inbox(console_, status: str | None, channel: str | None) -> dict:
    return await console_.api.get("/v1/conversations", {"status": status, "channel": channel, "limit": 100})


@router.get("/conversations")
async def conversations(
    console_: ConsoleDep, status: str | None = None, channel: str | None = None, open: int | None = None
) -> Response:
    try:
        inbox = await _inbox(console_, status, channel)
        thread = await _thread(console_, open) if open else None
    except ApiRefused as error:
        return refusal_page(console_, error)
    return console_.render(
        "conversations.html",
        inbox=inbox,
        thread=thread,
        status=status,
        channel=channel,
        may_reply=console_.session.may_write("admin"),
    )


@router.get("/conversations/inbox")
async def inbox_fragment(
    console_: ConsoleDep, status: str | None = None, channel: str | None = None, open: int | None = None
) -> Response:
    try:
        inbox = await _inbox(console_, status, channel)
    except ApiRefused as error:
        return refusal_page(console_, error)
    return console_.render("_inbox.html", inbox=inbox, open_id=open, status=status, channel=channel)


async def _thread(console_, conversation_id: int) -> dict:
    thread = await console_.api.get(f"/v1/conversations/{conversation_id}")
    thread["consents"] = (await console_.api.get(f"/v1/customers/{thread['user_id']}/consents"))["channels"]
    return thread


@router.get("/conversations/{conversation_id}/thread")
async def thread_fragment(conversation_id: int, console_: ConsoleDep) -> Response:
    try:
        thread = await _thread(console_, conversation_id)
    except ApiRefused as error:
        return refusal_page(console_, error)
    return console_.render("_thread.html", thread=thread, may_reply=console_.session.may_write("admin"))


@router.post("/conversations/{conversation_id}/reply", dependencies=[CsrfChecked])
async def reply(conversation_id: int, console_: ConsoleDep, body: Annotated[str, Form(max_length=1600)]) -> Response:
    error = None
    try:
        await console_.api.post(
            f"/v1/conversations/{conversation_id}/messages", json={"body": body, "agent": console_.session.name}
        )
    except ApiRefused as refused:
        if refused.status == 401:
            return refusal_page(console_, refused)
        error = refused.message
    try:
        thread = await _thread(console_, conversation_id)
    except ApiRefused as refused:
        return refusal_page(console_, refused)
    return console_.render("_thread.html", thread=thread, may_reply=console_.session.may_write("admin"), error=error)


@router.get("/conversations/stream")
async def stream(request: Request, console_: ConsoleDep) -> Response:
    """Server-sent events: `changed` whenever the newest conversation activity changes.

    It polls the API (the same read the page makes) rather than hooking the webhook, so it
    sees replies that arrive through any process of the service."""

    async def events():
        last = None
        for _ in range(int(STREAM_SECONDS / POLL_SECONDS)):
            if await request.is_disconnected():
                return
            try:
                newest = (await console_.api.get("/v1/conversations", {"limit": 1}))["items"]
            except ApiRefused:
                return
            mark = json.dumps(newest[:1], sort_keys=True, default=str)
            if last is not None and mark != last:
                yield "event: changed\ndata: {}\n\n"
            elif last is None:
                yield ": connected\n\n"
            last = mark
            await asyncio.sleep(POLL_SECONDS)

    return console_.keep(
        StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
    )
