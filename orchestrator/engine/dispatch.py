"""Hand queued messages to channel adapters.

The claim (`queued` → `sending`) is committed before any provider call, so a message is
handed over at most once per claim; the provider's answer is recorded afterwards. A message
still in `sending` after a crash is left for reconciliation, never blindly resent.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy import bindparam, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.channels.base import Channel, OutboundMessage, Outcome, SendResult
from orchestrator.engine.retry import MAX_ATTEMPTS, backoff_delay
from orchestrator.runtime import Runtime
from orchestrator.storage.models import Message
from orchestrator.storage.queries import supports_skip_locked

log = logging.getLogger("orchestrator.dispatch")

MAX_CONCURRENT_SENDS = 64


def outbound(message: Message) -> OutboundMessage:
    metadata = dict(message.template_metadata)
    variables = metadata.pop("variables", {})
    return OutboundMessage(
        send_key=message.send_key,
        channel=Channel(message.channel),
        to=message.to_address,
        body=message.body or "",
        subject=message.subject,
        html=message.html,
        template_metadata=metadata,
        variables=variables,
        marketing=message.marketing,
    )


async def claim_queued_messages(runtime: Runtime, limit: int) -> list[Message]:
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        query = (
            select(Message)
            .where(Message.status == "queued", col(Message.next_attempt_at) <= now)
            .order_by(col(Message.next_attempt_at))
            .limit(limit)
        )
        if supports_skip_locked(session):
            query = query.with_for_update(skip_locked=True)
        messages = (await session.exec(query)).all()
        for message in messages:
            message.status, message.sending_at, message.updated_at = "sending", now, now
            message.attempts += 1
        return list(messages)


async def _send(runtime: Runtime, message: Message, gate: asyncio.Semaphore) -> SendResult:
    async with gate:
        try:
            return await runtime.channels.for_channel(message.channel).send(outbound(message))
        except Exception as error:  # an adapter bug must not lose the message
            log.exception("adapter raised for %s", message.send_key)
            return SendResult.transient(None, f"{type(error).__name__}: {error}")


def result_values(message: Message, result: SendResult, now: datetime) -> dict:
    """The same columns for every outcome, so all results go out in one executemany."""
    values: dict = {
        "message_id": message.id, "updated_at": now, "error_code": result.error_code,
        "status_reason": result.error_message, "sent_at": None, "provider_message_id": None,
        "cost": None, "cost_currency": None, "next_attempt_at": message.next_attempt_at,
    }
    if result.outcome == Outcome.accepted:
        values.update(status="sent", sent_at=now, provider_message_id=result.provider_message_id,
                      cost=result.cost, cost_currency=result.cost_currency)
    elif result.outcome == Outcome.transient_failure and message.attempts < MAX_ATTEMPTS:
        values.update(status="queued", next_attempt_at=now + backoff_delay(message.attempts, result.retry_after_seconds))
    else:
        values.update(status="failed")
        if result.outcome == Outcome.transient_failure:
            values["status_reason"] = f"gave up after {message.attempts} attempts: {result.error_message}"
    return values


_RECORD_RESULT = (
    update(Message.__table__)
    .where(Message.__table__.c.id == bindparam("message_id"), Message.__table__.c.status == "sending")
    .values({name: bindparam(name) for name in (
        "updated_at", "error_code", "status_reason", "sent_at", "provider_message_id",
        "cost", "cost_currency", "next_attempt_at", "status")})
)


async def record_results(session: AsyncSession, messages: list[Message], results: list[SendResult], now: datetime) -> None:
    rows = [result_values(message, result, now) for message, result in zip(messages, results)]
    # Only rows still `sending` are touched: a reconciler may have settled one meanwhile.
    connection = await session.connection()
    await connection.execute(_RECORD_RESULT, rows)


async def dispatch_queued_messages(runtime: Runtime, limit: int | None = None) -> int:
    messages = await claim_queued_messages(runtime, limit or runtime.settings.worker_batch_size)
    if not messages:
        return 0
    gate = asyncio.Semaphore(MAX_CONCURRENT_SENDS)
    results = await asyncio.gather(*(_send(runtime, m, gate) for m in messages))
    async with runtime.sessions() as session, session.begin():
        await record_results(session, messages, results, runtime.clock.now())
    return len(messages)
