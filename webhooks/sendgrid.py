"""SendGrid's Event Webhook: `POST /webhooks/sendgrid/events`.

SendGrid posts a JSON array of events (delivered, open, bounce, ...), several messages mixed,
in no particular order, and retries a batch that did not get a 2xx. So:

- Every request must carry a valid ECDSA P-256 / SHA-256 signature over `timestamp + raw
  body` (headers `X-Twilio-Email-Event-Webhook-Signature`, base64 DER, and `...-Timestamp`),
  as SendGrid's own helper checks it, under `SENDGRID_WEBHOOK_PUBLIC_KEY` (the Signed Event
  Webhook's verification key) or, against the bundled fake, the fake's own key (generated
  and kept in the database). With real SendGrid and no key, every call is refused. A
  timestamp more than `sendgrid_webhook_max_age_seconds` (10 minutes) from our wall clock is
  refused too, so a captured request cannot be replayed later; within the window a replay is
  harmless, because each event is applied once (next point). Anything else gets 403. Only
  `ORCHESTRATOR_SENDGRID_WEBHOOK_VERIFY_SIGNATURES=false` turns the check off (start-up warns).
- Each event is applied once: its `sg_event_id` is claimed in the webhook inbox, in the same
  transaction as its effects. The whole batch is one transaction, answered after the commit;
  a failure answers 500 and SendGrid retries the batch, already-applied events skipped.
- The message is found by the `send_key` custom arg our adapter sets, else by SendGrid's
  message id (`sg_message_id` up to the first "."; the adapter stored it from X-Message-Id).
  Events for messages we do not know are skipped, not an error.

What each event does (statuses through `orchestrator.delivery.statuses.record_status`):

    processed, deferred   history (resolves an `unknown` message: SendGrid has it)
    delivered             delivered
    open, click           engagement: first_opened_at / first_clicked_at
    bounce (type bounce)  failed + address suppressed (hard_bounce)
    bounce (type blocked) undelivered, address kept (a soft bounce: the server refused this
                          message, the address itself is fine); legacy `blocked` the same
    dropped               failed (SendGrid never tried: e.g. an address on its own list)
    spamreport            address suppressed + consent opted_out (source spam_report)
    unsubscribe, group_unsubscribe  consent opted_out (source provider_opt_out)
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.auth.service_secrets import public_key_of
from orchestrator.config import Settings
from orchestrator.customers.consent import OPTED_OUT, record_consent, suppress
from orchestrator.delivery.statuses import FAILURES, MEANING, first_receipt, record_status
from orchestrator.storage.models import Message
from orchestrator.web.dependencies import RuntimeDep
from orchestrator.web.responses import error

log = logging.getLogger("orchestrator.webhooks.sendgrid")
router = APIRouter(tags=["webhooks"])

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
SOURCE = "sendgrid"
# Kept in the status history; `ip` is left out on purpose (personal data we do not need).
_DETAIL_FIELDS = (
    "sg_event_id",
    "reason",
    "status",
    "type",
    "response",
    "attempt",
    "url",
    "bounce_classification",
    "sg_machine_open",
    "asm_group_id",
    "useragent",
)
_OPT_OUT_EVENTS = {"unsubscribe", "group_unsubscribe"}


@router.post(
    "/webhooks/sendgrid/events",
    responses={
        400: error("Not a JSON array of events"),
        403: error("Missing or invalid signature"),
        413: error("Over the webhook body limit"),
    },
)
async def sendgrid_events(request: Request, runtime: RuntimeDep) -> dict[str, int]:
    body = await request.body()
    settings = runtime.settings
    if len(body) > settings.max_request_bytes:
        raise HTTPException(413, "batch too large")
    if settings.sendgrid_webhook_verify_signatures:
        refuse_unverified(settings, request.headers.get(SIGNATURE_HEADER), request.headers.get(TIMESTAMP_HEADER), body)
    try:
        events = json.loads(body)
    except ValueError:
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(events, list):
        raise HTTPException(400, "the body must be a JSON array of events")
    async with runtime.sessions() as session, session.begin():
        return await apply_events(session, events, runtime.clock.now())


def verification_key(settings: Settings) -> str | None:
    """The public key events must be signed with: SendGrid's, or the bundled fake's own."""
    if settings.sendgrid_webhook_public_key:
        return settings.sendgrid_webhook_public_key
    if settings.uses_fake_sendgrid and settings.fake_sendgrid_signing_key:
        return _fake_public_key(settings.fake_sendgrid_signing_key)
    return None


@lru_cache(maxsize=4)
def _fake_public_key(private_key_pem: str) -> str:
    return public_key_of(private_key_pem)


def refuse_unverified(settings: Settings, signature: str | None, timestamp: str | None, body: bytes) -> None:
    key = verification_key(settings)
    if key is None:
        raise HTTPException(403, "SendGrid events cannot be verified: SENDGRID_WEBHOOK_PUBLIC_KEY is not set")
    if not signature_is_valid(key, signature, timestamp, body):
        raise HTTPException(403, "missing or invalid SendGrid signature")
    if abs(time.time() - int(timestamp)) > settings.sendgrid_webhook_max_age_seconds:
        raise HTTPException(
            403,
            f"{TIMESTAMP_HEADER} is more than {settings.sendgrid_webhook_max_age_seconds:g} s "
            "from our clock: a replayed or delayed request",
        )


def signature_is_valid(public_key: str, signature: str | None, timestamp: str | None, body: bytes) -> bool:
    """SendGrid's check: ECDSA P-256 with SHA-256 over `timestamp + body`, DER signature."""
    if not signature or not timestamp or not (timestamp.isascii() and timestamp.isdigit()):
        return False
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = _public_key(public_key)
    except ValueError as error:  # misconfigured: every call is refused, so say why
        log.error("SENDGRID_WEBHOOK_PUBLIC_KEY cannot be used: %s", error)
        return False
    try:
        key.verify(base64.b64decode(signature, validate=True), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError, binascii.Error):
        return False


@lru_cache(maxsize=4)
def _public_key(text: str):
    """The key as SendGrid shows it (base64 DER); a PEM block is accepted too."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    armored = [line for line in text.strip().splitlines() if not line.startswith("-----")]
    key = load_der_public_key(base64.b64decode("".join(armored).strip()))
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("the SendGrid verification key must be an ECDSA P-256 public key")
    return key


def provider_id(event: dict[str, Any]) -> str | None:
    """`sg_message_id` is `<X-Message-Id>.<filter and recipient suffix>`."""
    value = event.get("sg_message_id")
    if not isinstance(value, str):
        return None
    return value.split(".", 1)[0] or None


async def apply_events(session: AsyncSession, events: list[Any], now: datetime) -> dict[str, int]:
    """Apply a batch once each; returns counts (applied, duplicates, unmatched, invalid)."""
    valid = [
        e
        for e in events
        if isinstance(e, dict)
        and isinstance(e.get("sg_event_id"), str)
        and e["sg_event_id"]
        and isinstance(e.get("event"), str)
    ]
    counts = {"applied": 0, "duplicates": 0, "unmatched": 0, "invalid": len(events) - len(valid)}
    by_send_key, by_provider_id = await _load_messages(session, valid)
    for event in valid:
        message = by_send_key.get(event.get("send_key")) or by_provider_id.get(provider_id(event))
        if message is None:
            counts["unmatched"] += 1
            continue
        if not await first_receipt(session, SOURCE, event["sg_event_id"][:255], now):
            counts["duplicates"] += 1
            continue
        await apply_event(session, message, event, now)
        counts["applied"] += 1
    if counts["invalid"] or counts["unmatched"]:
        log.info("sendgrid batch: %s", counts)
    return counts


async def _load_messages(session: AsyncSession, events: list[dict]) -> tuple[dict[str, Message], dict[str, Message]]:
    """The batch's messages in (at most) two queries, locked for this transaction in id
    order so that concurrent batches touching the same messages queue instead of deadlocking."""
    send_keys = {e["send_key"] for e in events if isinstance(e.get("send_key"), str)}
    found = (
        list(
            (
                await session.exec(
                    select(Message)
                    .where(col(Message.send_key).in_(send_keys))
                    .order_by(col(Message.id))
                    .with_for_update()
                )
            ).all()
        )
        if send_keys
        else []
    )
    by_send_key = {m.send_key: m for m in found}
    missing = {provider_id(e) for e in events if e.get("send_key") not in by_send_key} - {None}
    by_provider_id: dict[str, Message] = {}
    if missing:
        for message in (
            await session.exec(
                select(Message)
                .where(col(Message.provider_message_id).in_(missing))
                .order_by(col(Message.id))
                .with_for_update()
            )
        ).all():
            by_provider_id.setdefault(message.provider_message_id, message)
    return by_send_key, by_provider_id


async def apply_event(session: AsyncSession, message: Message, event: dict[str, Any], now: datetime) -> None:
    kind = event["event"]
    status = "blocked" if kind == "bounce" and event.get("type") == "blocked" else kind
    status = "spamreport" if status == "spam_report" else status
    failure = MEANING.get(status) in FAILURES
    address = message.to_address or event.get("email")
    await record_status(
        session,
        message,
        source=SOURCE,
        status=status,
        now=now,
        occurred_at=_occurred_at(event, now),
        error_code=str(event.get("status") or status) if failure else None,  # e.g. "5.1.1"
        reason=event.get("reason") if isinstance(event.get("reason"), str) else None,
        detail={k: event[k] for k in _DETAIL_FIELDS if k in event},
        provider_message_id=provider_id(event),
        locked=True,
    )
    evidence = {"sg_event_id": event["sg_event_id"], "event": kind, "message_id": message.id}
    if status == "bounce" and address:
        await suppress(session, "email", address, "hard_bounce", now)
    elif status == "spamreport":
        if address:
            await suppress(session, "email", address, "spam_report", now)
        await record_consent(
            session, message.customer_id, "email", OPTED_OUT, "spam_report", now, evidence, only_if_changed=True
        )
    elif status in _OPT_OUT_EVENTS:
        if "asm_group_id" in event:
            evidence["asm_group_id"] = event["asm_group_id"]
        await record_consent(
            session, message.customer_id, "email", OPTED_OUT, "provider_opt_out", now, evidence, only_if_changed=True
        )


def _occurred_at(event: dict[str, Any], now: datetime) -> datetime:
    try:
        return datetime.fromtimestamp(int(event["timestamp"]), tz=timezone.utc)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return now
