"""Provider statuses applied to messages: the one place that decides what a callback means.

Every webhook (Twilio status callbacks, SendGrid events, our own open pixel and click
redirects) goes through `record_status`. It always appends the raw report to
`message_status_events` (the history), then moves `messages.status` only forward.

Callbacks arrive late, twice and out of order: Twilio posts `sent` and `delivered` from
different systems and either may land first; SendGrid batches events per recipient server.
So the status is the highest-ranked meaning ever reported, which makes the final state the
same whatever the arrival order:

    reported status (provider)                          meaning       rank
    accepted, scheduled, queued, sending, sent (Twilio)  sent          1
    processed, deferred (SendGrid)                       sent          1
    undelivered (Twilio), blocked (SendGrid soft bounce) undelivered   2
    failed, canceled (Twilio), bounce, dropped (SendGrid) failed       3
    delivered (Twilio, SendGrid)                         delivered     4
    read (Twilio WhatsApp)                               read          5
    open, click (SendGrid, our tracking)                 delivered     4  (engagement)
    spamreport (SendGrid)                                delivered     4  (they saw it)
    anything else (unsubscribe, receiving, ...)          history only

Why this order:
- `read` follows `delivered` (WhatsApp), never the reverse.
- A failure after `delivered` does not undo it: the receiving side had the message (an
  asynchronous e-mail bounce after acceptance, a late carrier receipt). A bounce still
  suppresses the address; see `webhooks/sendgrid.py`.
- Proof of delivery outranks a failure reported earlier, so `failed` then `delivered` and
  `delivered` then `failed` end the same: delivered. Twilio never reports both for one
  message; when anything does, the evidence that the customer got it wins.
- `blocked` (SendGrid's soft bounce) is not retried by SendGrid: the message is
  `undelivered`, but the address stays usable (no suppression).
- Engagement (an open or a click) proves the mail arrived, so a message still `sent` becomes
  `delivered` (with `delivered_at` at the engagement's time until a real receipt says
  earlier). Opens and clicks never raise it to `read`: mail clients prefetch pixels (Apple
  Mail Privacy Protection) and scanners follow links, so they are not proof of reading.
  They set `first_opened_at` / `first_clicked_at` (the earliest reported).

Messages we have not finished sending:
- `queued` (waiting for a retry after a transient error) and `unknown` (a crash cut the
  provider call off) are resolved by any provider status: the provider has the message, so
  it must not be sent again. The provider id, when reported, fills a missing one.
- `sending`: a worker is waiting for the provider's answer right now and records it only
  over `sending`/`unknown`; changing the status under it would lose that answer (the
  provider id among it). Such reports go to history only (first open and click times are
  still kept).
- `skipped` was never sent; reports for it are history only.

Concurrent callbacks for one message are serialized by re-reading the row `FOR UPDATE`
(PostgreSQL; SQLite writes are serialized anyway), so two reports never both act on a stale
status.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.clock import utc
from orchestrator.storage.feedback_models import MessageStatusEvent, WebhookReceipt
from orchestrator.storage.models import Message
from orchestrator.storage.queries import insert_ignoring_conflict
from orchestrator.vocabulary import MessageStatus

SENT, UNDELIVERED, FAILED, DELIVERED, READ = (
    MessageStatus.sent,
    MessageStatus.undelivered,
    MessageStatus.failed,
    MessageStatus.delivered,
    MessageStatus.read,
)
RANK = {SENT: 1, UNDELIVERED: 2, FAILED: 3, DELIVERED: 4, READ: 5}
FAILURES = {UNDELIVERED, FAILED}
OPEN, CLICK = "open", "click"

# What a reported status means for `messages.status` (see the table above).
MEANING: dict[str, str] = {
    **dict.fromkeys(("accepted", "scheduled", "queued", "sending", "sent", "processed", "deferred"), SENT),
    **dict.fromkeys(("undelivered", "blocked"), UNDELIVERED),
    **dict.fromkeys(("failed", "canceled", "bounce", "dropped"), FAILED),
    **dict.fromkeys(("delivered", OPEN, CLICK, "spamreport"), DELIVERED),
    "read": READ,
}
RESOLVABLE = {MessageStatus.queued, MessageStatus.unknown}  # ours, not yet known to the provider as far as we know
_ENGAGEMENT_COLUMNS = {OPEN: "first_opened_at", CLICK: "first_clicked_at"}


def next_status(current: str, reported: str) -> str | None:
    """The message's new status after `reported`, or None when it stays as it is."""
    meaning = MEANING.get(reported)
    if meaning is None or current in (MessageStatus.sending, MessageStatus.skipped):
        return None
    if current in RESOLVABLE:
        return meaning
    if current not in RANK:  # a status this table does not know: leave it to its owner
        return None
    return meaning if RANK[meaning] > RANK[current] else None


async def first_receipt(session: AsyncSession, source: str, external_id: str, now: datetime) -> bool:
    """Claim a webhook delivery in the inbox; False means it was seen before (a replay).

    Call it in the same transaction as the effects, so a crash leaves neither behind."""
    new_id = await insert_ignoring_conflict(
        session,
        WebhookReceipt,
        dict(source=source, external_id=external_id, received_at=now),
        ["source", "external_id"],
    )
    return new_id is not None


async def record_status(
    session: AsyncSession,
    message: Message,
    *,
    source: str,
    status: str,
    now: datetime,
    occurred_at: datetime | None = None,
    error_code: str | None = None,
    detail: dict[str, Any] | None = None,
    reason: str | None = None,
    provider_message_id: str | None = None,
    locked: bool = False,
) -> None:
    """Append `status` to the message's history and apply what it means (module docstring).

    `source` names the reporter (twilio, sendgrid, tracking); `status` is the provider's own
    word (`delivered`, `bounce`, `open`, ...). `reason` becomes `status_reason` on a failure.
    The row is re-read `FOR UPDATE` first, unless the caller already loaded it so in this
    transaction (`locked=True`, as a batch of events does).
    """
    if not locked:
        await session.flush()  # nothing pending on `message` may be lost by the re-read
        await session.refresh(message, with_for_update=True)
    occurred_at = utc(occurred_at or now)
    error_code = error_code[:32] if error_code else None
    session.add(
        MessageStatusEvent(
            message_id=message.id,
            source=source[:32],
            status=status[:32],
            error_code=error_code,
            detail=detail or {},
            occurred_at=occurred_at,
        )
    )
    new_status = next_status(message.status, status)
    if new_status is not None:
        previous = message.status
        message.status = new_status
        if new_status in FAILURES:
            message.error_code, message.status_reason = error_code, reason
        elif previous in FAILURES or previous in RESOLVABLE:
            message.error_code = message.status_reason = None  # evidence of delivery overrides it
        if previous in RESOLVABLE:
            message.sent_at = message.sent_at or occurred_at
    if (
        message.status not in (MessageStatus.sending, MessageStatus.skipped)
        and provider_message_id
        and not message.provider_message_id
    ):
        message.provider_message_id = provider_message_id[:255]
    if MEANING.get(status) in (DELIVERED, READ) and message.status in (DELIVERED, READ):
        message.delivered_at = _earliest(message.delivered_at, occurred_at)
    if status in _ENGAGEMENT_COLUMNS:
        column = _ENGAGEMENT_COLUMNS[status]
        setattr(message, column, _earliest(getattr(message, column), occurred_at))
    message.updated_at = now
    session.add(message)


async def record_price(
    session: AsyncSession, message_id: int, cost: Decimal, currency: str | None, now: datetime
) -> bool:
    """Record what the provider charged for a message, unless a price is already recorded
    (two callbacks may both have asked for it). True when this call recorded it.

    One UPDATE without reading the row first: the price is fetched from the provider after
    the status was committed, and this second transaction holds the row only for itself.
    `updated_at` moves so the KPI rollups count the cost (`orchestrator.kpis.rollup`)."""
    recorded = await session.exec(
        sa.update(Message)
        .where(col(Message.id) == message_id, col(Message.cost).is_(None))
        .values(cost=cost, cost_currency=currency[:3] if currency else None, updated_at=now)
    )
    return recorded.rowcount == 1


def _earliest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate < utc(current) else current
