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

from functools import partial

from fastapi import APIRouter, HTTPException, Request, Response
from sqlmodel.ext.asyncio.session import AsyncSession
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from orchestrator.channels.configure import twilio_auth_token
from orchestrator.channels.twilio import SEND_KEY_PARAMETER
from orchestrator.conversations.inbound import Inbound, receive_inbound
from orchestrator.delivery.status_reports import ReportOutcome, StatusReport, apply_status_reports
from orchestrator.delivery.statuses import record_price
from orchestrator.events.group_commit import GroupCommit
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
    error_code = form.get("ErrorCode") or None
    report = StatusReport(
        provider_message_id=sid,
        status=status,
        send_key=request.query_params.get(SEND_KEY_PARAMETER),
        error_code=error_code,
        reason=f"Twilio error {error_code}" if error_code else None,
        detail=form,
    )
    # Applied together with the callbacks that arrive meanwhile (delivery/status_reports.py);
    # a replay of the same status for the same message (Twilio retries on timeouts) is not.
    outcome = await status_intake(request).submit(report)
    if outcome.message_id is None:
        # Not known yet, as a rule: the provider answered the send, and its first callbacks
        # came before the worker stored the provider's id. Answer "try again" (nothing is
        # recorded), so a retrying sender brings it back instead of it being lost.
        return Response(status_code=503, headers={"Retry-After": "1"})
    if outcome.applied and not outcome.priced and status in PRICED_STATUSES:
        # Only now, committed: asking Twilio takes a network round trip, and the status
        # transaction locked the message row (on SQLite, the database's only write lock).
        await _store_price(runtime, session, outcome.message_id, outcome.channel, sid)
    return Response(status_code=204)


def status_intake(request: Request) -> GroupCommit[StatusReport, ReportOutcome]:
    """The app's group commit for status callbacks, made on first use (`close_status_intake`
    ends it)."""
    state = request.app.state
    if getattr(state, "status_intake", None) is None:
        state.status_intake = GroupCommit(
            partial(apply_status_reports, state.runtime, source="twilio", inbox="twilio-status")
        )
    return state.status_intake


async def close_status_intake(state) -> None:
    intake = getattr(state, "status_intake", None)
    if intake is not None:
        await intake.aclose()


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
