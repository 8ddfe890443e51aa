"""Twilio talks back: delivery status callbacks and inbound SMS / WhatsApp messages.

Every request must carry a valid `X-Twilio-Signature`, computed by Twilio over the public
URL it called and the form fields, with our auth token (`RequestValidator` from the
official SDK), and the signed form must have Twilio's shape (`twilio_parameters.py`: the
signature cannot tell `{"a": "bc"}` from `{"ab": "c"}`). Anything else gets a 403 before it
touches the database.

Consent keywords (STOP, START) take effect in arrival order: Twilio's inbound webhook
carries no time of its own to order them by. A replayed message cannot reorder them: the
same MessageSid is applied once, and a form reshaped to carry a new one is refused.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from sqlmodel.ext.asyncio.session import AsyncSession
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from orchestrator.channels.configure import twilio_auth_token
from orchestrator.channels.twilio import SEND_KEY_PARAMETER
from orchestrator.conversations.inbound import Inbound, receive_inbound
from orchestrator.delivery.statuses import (
    find_message_by_provider_id,
    find_message_by_send_key,
    first_receipt,
    record_price,
    record_status,
)
from orchestrator.runtime import Runtime
from orchestrator.vocabulary import MessageStatus, bare_number, channel_of_address
from orchestrator.web.dependencies import RuntimeDep, SessionDep
from orchestrator.web.responses import error
from webhooks.twilio_parameters import shape_problem

router = APIRouter(prefix="/webhooks/twilio", tags=["webhooks"])

WEBHOOK_ERRORS = {403: error("Missing or invalid X-Twilio-Signature"), 422: error("A required field is missing")}


async def verified_form(request: Request, runtime: Runtime) -> dict[str, str]:
    form = {key: str(value) for key, value in (await request.form()).multi_items()}
    url = runtime.settings.public_base_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not RequestValidator(twilio_auth_token(runtime.settings)).validate(url, form, signature):
        raise HTTPException(403, "invalid or missing X-Twilio-Signature")
    problem = shape_problem(form)
    if problem:
        raise HTTPException(403, f"not a Twilio request: {problem}")
    return form


@router.post("/status", responses=WEBHOOK_ERRORS)
async def status_callback(request: Request, session: SessionDep, runtime: RuntimeDep) -> Response:
    form = await verified_form(request, runtime)
    sid, status = form.get("MessageSid", ""), form.get("MessageStatus", "")
    if not sid or not status:
        raise HTTPException(422, "MessageSid and MessageStatus are required")
    now = runtime.clock.now()
    async with session.begin():
        message = await find_message_by_provider_id(session, sid)
        send_key = request.query_params.get(SEND_KEY_PARAMETER)
        if message is None and send_key:  # a crash kept us from storing the SID: the key names it
            message = await find_message_by_send_key(session, send_key)
        if message is None:
            # Not known yet, as a rule: the provider answered the send, and its first callbacks
            # came before the worker stored the provider's id. Answer "try again" (nothing is
            # recorded), so a retrying sender brings it back instead of it being lost.
            return Response(status_code=503, headers={"Retry-After": "1"})
        # The same status for the same message twice is a replay: Twilio retries on timeouts.
        if not await first_receipt(session, "twilio-status", f"{sid}:{status}", now):
            return Response(status_code=204)
        await record_status(
            session,
            message,
            source="twilio",
            status=status,
            now=now,
            provider_message_id=sid,
            error_code=form.get("ErrorCode") or None,
            detail=form,
            reason=f"Twilio error {form['ErrorCode']}" if form.get("ErrorCode") else None,
        )
        wants_price = message.cost is None and status in PRICED_STATUSES
    if wants_price:
        # Only now, committed: asking Twilio takes a network round trip, and the status
        # transaction locked the message row (on SQLite, the database's only write lock).
        await _store_price(runtime, session, message.id, message.channel, sid)
    return Response(status_code=204)


PRICED_STATUSES = {MessageStatus.sent, MessageStatus.delivered, MessageStatus.undelivered, MessageStatus.read}


async def _store_price(runtime: Runtime, session: AsyncSession, message_id: int, channel: str, sid: str) -> None:
    adapter = runtime.channels.for_channel(channel)
    fetch_price = getattr(adapter, "fetch_price", None)  # Twilio adapters; the local ones have no prices
    if fetch_price is None:
        return
    priced = await fetch_price(sid)
    if priced is not None:
        async with session.begin():
            await record_price(session, message_id, *priced, now=runtime.clock.now())


@router.post("/inbound", responses=WEBHOOK_ERRORS)
async def inbound_message(request: Request, session: SessionDep, runtime: RuntimeDep) -> Response:
    form = await verified_form(request, runtime)
    sender, recipient = form.get("From", ""), form.get("To", "")
    inbound = Inbound(
        provider_message_id=form.get("MessageSid", ""),
        channel=channel_of_address(sender),
        from_number=bare_number(sender),
        to_number=bare_number(recipient),
        body=form.get("Body", ""),
    )
    if not inbound.provider_message_id or not inbound.from_number:
        raise HTTPException(422, "MessageSid and From are required")
    async with session.begin():
        outcome = await receive_inbound(session, runtime, inbound)
    twiml = MessagingResponse()
    if outcome.reply:
        twiml.message(outcome.reply)
    return Response(str(twiml), media_type="application/xml")
