"""Hand queued messages to channel adapters.

The claim (`queued` → `sending`, or a new message written `sending` by the worker that
advanced its enrollment) is committed before any provider call, so a message is handed
over at most once per claim; the provider's answer is recorded afterwards. A message
still in `sending` after a crash, or `unknown` after a lost answer, is settled by
`reconcile`, which asks the provider before anything is sent again.
Each channel claims only as many messages as its send-rate budget allows right now.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam, update

from orchestrator import metrics
from orchestrator.channels.base import Channel, OutboundMessage, Outcome, SendResult
from orchestrator.config import Settings
from orchestrator.delivery.tracking import email_links
from orchestrator.engine.fallback import queue_fallbacks
from orchestrator.engine.frequency_caps import enforce_caps
from orchestrator.engine.retry import MAX_ATTEMPTS, backoff_delay
from orchestrator.runtime import Runtime
from orchestrator.storage.models import Message
from orchestrator.storage.queries import (
    claim_in_index_order,
    insert_many_ignoring_conflict,
    insert_many_returning,
    supports_skip_locked,
)
from orchestrator.templating.control_chars import clean_body, clean_header
from orchestrator.vocabulary import MessageStatus

log = logging.getLogger("orchestrator.dispatch")

RATE_LIMITED = "rate_limited"  # our own limiter said wait: not an attempt, not an error
BODY_TOO_LONG = "body_too_long"  # over the adapter's declared maximum: never handed over


def outbound(message: ClaimedMessage, settings: Settings) -> OutboundMessage:
    metadata = dict(message.template_metadata)
    variables = metadata.pop("variables", {})
    # Marketing e-mail: an unsubscribe link (List-Unsubscribe headers) and, over SMTP, tracked HTML.
    is_email = message.channel == Channel.email.value
    unsubscribe_url, html = email_links(settings, message) if is_email else (None, message.html)
    # Journey messages were cleaned when rendered; agent replies and anything written to the
    # table some other way are cleaned here, where every message becomes provider fields.
    return OutboundMessage(
        send_key=message.send_key,
        channel=Channel(message.channel),
        to=message.to_address,
        body=clean_body(message.body or ""),
        subject=clean_header(message.subject) if message.subject is not None else None,
        html=html,
        template_metadata=metadata,
        variables=variables,
        marketing=message.marketing,
        unsubscribe_url=unsubscribe_url,
    )


@dataclass(slots=True)
class ClaimedMessage:
    """What sending a claimed (`sending`) message and recording the answer read of its row.

    Plain attributes, not an ORM object: a worker claims thousands of messages a second, and
    loading and flushing them through the ORM cost more than the statements themselves."""

    id: int
    send_key: str
    enrollment_id: int | None
    customer_id: int
    step_id: str | None
    channel: str
    to_address: str | None
    subject: str | None
    body: str | None
    html: str | None
    template_metadata: dict[str, Any]
    marketing: bool
    priority: int
    fallback_channel: str | None
    attempts: int
    next_attempt_at: datetime | None


_MESSAGES = Message.__table__
_CLAIMED_COLUMNS = tuple(_MESSAGES.c[name] for name in ClaimedMessage.__slots__)
_CLAIMED_FIELDS = tuple(name for name in ClaimedMessage.__slots__ if name != "id")


def _claim_statement(channel: Channel, now: datetime, limit: int, skip_locked: bool) -> sa.Update:
    """One statement: pick the due messages and mark them `sending`, returning what the send needs."""
    due = (
        sa.select(_MESSAGES.c.id)
        .where(
            _MESSAGES.c.status == MessageStatus.queued,
            _MESSAGES.c.channel == channel.value,
            _MESSAGES.c.next_attempt_at <= now,
        )
        .order_by(_MESSAGES.c.next_attempt_at)
        .limit(limit)
    )
    if skip_locked:
        due = due.with_for_update(skip_locked=True)
    return (
        update(_MESSAGES)
        .where(_MESSAGES.c.id.in_(due.scalar_subquery()))
        .values(status=MessageStatus.sending, sending_at=now, updated_at=now, attempts=_MESSAGES.c.attempts + 1)
        .returning(*_CLAIMED_COLUMNS)
    )


async def claim_queued_messages(runtime: Runtime, channel: Channel, limit: int) -> list[ClaimedMessage]:
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        skip_locked = supports_skip_locked(session)
        if skip_locked:
            await claim_in_index_order(session)
        connection = await session.connection()
        claimed = [
            ClaimedMessage(*row) for row in await connection.execute(_claim_statement(channel, now, limit, skip_locked))
        ]
        claimed = await without_capped(session, runtime, claimed, now)
    return sorted(claimed, key=lambda m: (m.next_attempt_at, m.id))  # RETURNING keeps no order


async def without_capped(session, runtime: Runtime, claimed: list[ClaimedMessage], now: datetime) -> list:
    """The claimed messages the frequency caps let go; the others are written `skipped` in
    this same transaction, so the claim's commit already says they will not be sent."""
    if not runtime.frequency.enabled or not claimed:
        return claimed
    capped = await enforce_caps(session, runtime.frequency, claimed, now)
    return [m for m in claimed if m.id not in capped] if capped else claimed


async def insert_messages(
    session, runtime: Runtime, rows: list[dict], claim: Mapping[Channel, int], now: datetime
) -> list[ClaimedMessage]:
    """Insert new message rows (`ON CONFLICT (send_key) DO NOTHING`), up to `claim[channel]`
    of them written already claimed (`sending`, first attempt), and return those the
    frequency caps let go, for the caller to send once the transaction commits.

    The same commit-before-send as a dispatch claim, without a second statement to find and
    update each row. A row whose send key already existed is not returned, so it is never
    sent twice."""
    to_send = _mark_claimed(rows, claim, now)
    if not to_send:
        await insert_many_ignoring_conflict(session, Message, rows, ["send_key"])
        return []
    inserted = dict(await insert_many_returning(session, Message, rows, ["send_key"], Message.send_key))
    claimed = [
        ClaimedMessage(id=inserted[row["send_key"]], **{name: row[name] for name in _CLAIMED_FIELDS})
        for row in to_send
        if row["send_key"] in inserted
    ]
    return await without_capped(session, runtime, claimed, now)


def _mark_claimed(rows: list[dict], claim: Mapping[Channel, int], now: datetime) -> list[dict]:
    """Mark up to `claim[channel]` queued rows per channel `sending` (first attempt); returns them."""
    left = {channel.value: count for channel, count in claim.items()}
    claimed = []
    for row in rows:  # every row gets the same columns: one INSERT statement for all of them
        row["sending_at"], row["attempts"] = None, 0
        if row["status"] == MessageStatus.queued and left.get(row["channel"], 0) > 0:
            left[row["channel"]] -= 1
            row["status"], row["sending_at"], row["attempts"] = MessageStatus.sending, now, 1
            claimed.append(row)
    return claimed


async def _send(runtime: Runtime, message: ClaimedMessage, gates: dict[Channel, asyncio.Semaphore]) -> SendResult:
    channel = Channel(message.channel)
    adapter = runtime.channels.for_channel(channel)
    try:
        prepared = outbound(message, runtime.settings)
    except Exception as error:  # one message's bad data must not lose the batch's answers
        log.exception("could not prepare %s for its adapter", message.send_key)
        return SendResult.transient(None, f"{type(error).__name__}: {error}")
    if (too_long := adapter.body_refusal(prepared)) is not None:  # fails without using the send rate
        return SendResult.permanent(BODY_TOO_LONG, too_long)
    async with gates[channel]:
        if not await runtime.rate_limiter.try_acquire(channel):
            wait = await runtime.rate_limiter.seconds_until_available(channel)
            return SendResult.transient(RATE_LIMITED, "send rate limit reached", retry_after=wait)
        started, raised = time.perf_counter(), False  # wall time: a simulated engine clock stands still
        try:
            result = await adapter.send(prepared)
        except Exception as error:  # an adapter bug must not lose the message
            log.exception("adapter raised for %s", message.send_key)
            result, raised = SendResult.transient(None, f"{type(error).__name__}: {error}"), True
        metrics.observe_send(channel.value, adapter.provider, result, time.perf_counter() - started, raised=raised)
        return result


def result_values(message: ClaimedMessage, result: SendResult, now: datetime, followed_up: bool = False) -> dict:
    """The same columns for every outcome, so all results go out in one executemany.

    `followed_up`: the adapter can ask its provider about a send. For `sent` and `unknown`
    rows `next_attempt_at` then paces the reconciler (see `reconcile`); for the others it is
    cleared, so the reconciler's index range never holds what nobody can ask about."""
    values: dict = {
        "message_id": message.id,
        "updated_at": now,
        "error_code": result.error_code,
        "status_reason": result.error_message,
        "sent_at": None,
        "provider_message_id": None,
        "cost": None,
        "cost_currency": None,
        "next_attempt_at": message.next_attempt_at,
        "attempts": message.attempts,
    }
    if result.outcome == Outcome.accepted:
        values.update(
            status=MessageStatus.sent,
            sent_at=now,
            provider_message_id=result.provider_message_id,
            cost=result.cost,
            cost_currency=result.cost_currency,
        )
        if not followed_up:
            values["next_attempt_at"] = None
    elif result.outcome == Outcome.unknown:
        values.update(
            status=MessageStatus.unknown,
            status_reason=f"no answer from the provider, which may have accepted it; "
            f"not resent until the provider is asked ({result.error_message})"
            if followed_up
            else f"no answer from the provider, which may have accepted it; "
            f"not resent automatically ({result.error_message})",
        )
        if not followed_up:
            values["next_attempt_at"] = None
    elif result.error_code == RATE_LIMITED:
        values.update(
            status=MessageStatus.queued,
            attempts=message.attempts - 1,
            error_code=None,
            status_reason=None,
            next_attempt_at=now + timedelta(seconds=result.retry_after_seconds or 0),
        )
    elif result.outcome == Outcome.transient_failure and message.attempts < MAX_ATTEMPTS:
        values.update(
            status=MessageStatus.queued,
            next_attempt_at=now + backoff_delay(message.attempts, result.retry_after_seconds),
        )
    else:
        values.update(status=MessageStatus.failed)
        if result.outcome == Outcome.transient_failure:
            values["status_reason"] = f"gave up after {message.attempts} attempts: {result.error_message}"
    return values


# The provider's answer wins even over a reconciler that meanwhile called the send `unknown`.
_RECORD_RESULT = (
    update(_MESSAGES)
    .where(
        _MESSAGES.c.id == bindparam("message_id"),
        sa.or_(_MESSAGES.c.status == MessageStatus.sending, _MESSAGES.c.status == MessageStatus.unknown),
    )
    .values(
        {
            name: bindparam(name)
            for name in (
                "updated_at",
                "error_code",
                "status_reason",
                "sent_at",
                "provider_message_id",
                "cost",
                "cost_currency",
                "next_attempt_at",
                "attempts",
                "status",
            )
        }
    )
)


async def claim_size(runtime: Runtime, channel: Channel, limit: int) -> int:
    """Up to `limit`, as many as the channel's send-rate budget allows right now."""
    available = await runtime.rate_limiter.available(channel)
    return limit if available is None else min(limit, available)


async def dispatch_channel(runtime: Runtime, channel: Channel, limit: int) -> int:
    messages = await claim_queued_messages(runtime, channel, await claim_size(runtime, channel, limit))
    return await send_claimed(runtime, messages)


async def send_claimed(runtime: Runtime, messages: list[ClaimedMessage]) -> int:
    """Hand claimed messages to their adapters and record every answer in one transaction."""
    if not messages:
        return 0
    gates = {
        channel: asyncio.Semaphore(runtime.channels.for_channel(channel).max_concurrent_sends) for channel in Channel
    }
    results = await asyncio.gather(*(_send(runtime, m, gates) for m in messages))
    now = runtime.clock.now()
    followed_up = {channel.value: runtime.channels.for_channel(channel).can_look_up_sends for channel in Channel}
    rows = [result_values(m, r, now, followed_up[m.channel]) for m, r in zip(messages, results)]
    async with runtime.sessions() as session, session.begin():
        # In id order, the order status callbacks lock messages in (delivery/status_reports.py):
        # a callback group and this batch then never wait on each other in a cycle.
        await (await session.connection()).execute(_RECORD_RESULT, sorted(rows, key=lambda row: row["message_id"]))
        failed_for_good = [
            m for m, row in zip(messages, rows) if row["status"] == MessageStatus.failed and m.fallback_channel
        ]
        await queue_fallbacks(session, runtime, failed_for_good, now)
    return len(messages)


async def handoff_budget(runtime: Runtime, limit: int | None = None) -> dict[Channel, int]:
    """How many new messages per channel a worker may claim as it writes them (see
    `advance_due_enrollments`): what one dispatch round would claim, or up to `limit`,
    always within the channel's send-rate budget."""
    return {channel: await claim_size(runtime, channel, limit or _round_limit(runtime, channel)) for channel in Channel}


async def dispatch_queued_messages(runtime: Runtime, limit: int | None = None) -> int:
    return sum(
        [await dispatch_channel(runtime, channel, limit or _round_limit(runtime, channel)) for channel in Channel]
    )


def _round_limit(runtime: Runtime, channel: Channel) -> int:
    """What one round claims on a channel: what its adapter sends at once (see
    `ChannelAdapter.max_concurrent_sends`)."""
    return min(runtime.settings.worker_batch_size, runtime.channels.for_channel(channel).max_concurrent_sends)
