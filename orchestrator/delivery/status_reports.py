"""Status callbacks that arrive together are applied in one transaction.

One callback used to cost a transaction of its own: a pooled connection held for seven
round trips (find the message, claim the inbox row, lock and re-read the message, the
history row, the update, the commit). Twilio posts a message's `sent` and `delivered` within
seconds of each other, for every message of a campaign: at a few hundred callbacks a second
the connection pool ran dry, requests queued past Twilio's 15 s read timeout, and the work
done for them was thrown away as Twilio gave up (bench/callbacks.py, BENCHMARKS.md). Twilio
retries a timed-out callback once; a 5xx not at all under its default policy, so shedding
load with 503 would lose the callback instead (docs/send-safety.md).

So a callback, once its signature is checked, joins a group (`GroupCommit`, as single
events do): the group's messages are found and locked in one statement (in id order, as
the dispatcher records its answers, so neither two groups nor a group and a dispatch batch
wait on each other in a cycle), its inbox rows claimed in another, and each
report applied by `record_status` as before. Each caller answers after the commit that holds
its report, so "2xx only after commit" holds; a group that fails is retried one report at a
time, so one bad callback fails only itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.delivery.statuses import record_status
from orchestrator.runtime import Runtime
from orchestrator.storage.feedback_models import WebhookReceipt
from orchestrator.storage.models import Message
from orchestrator.storage.queries import insert_many_returning


@dataclass(frozen=True)
class StatusReport:
    """One provider callback: a status for the message with this provider id (or, when its
    id was never stored, this send key)."""

    provider_message_id: str
    status: str
    send_key: str | None = None
    error_code: str | None = None
    reason: str | None = None  # for `status_reason`, when the status is a failure
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def receipt_id(self) -> str:
        return f"{self.provider_message_id}:{self.status}"[:255]


@dataclass(frozen=True)
class ReportOutcome:
    message_id: int | None  # None: no such message (yet)
    applied: bool = False  # False with a message: a replay, already applied
    channel: str | None = None
    priced: bool = False  # the message already has its price


UNKNOWN_MESSAGE = ReportOutcome(message_id=None)


async def _locked_messages(session: AsyncSession, column, values: set[str]) -> dict[str, Message]:
    if not values:
        return {}
    rows = await session.exec(
        select(Message).where(col(column).in_(values)).order_by(col(Message.id)).with_for_update()
    )
    found: dict[str, Message] = {}
    for message in rows.all():
        found.setdefault(getattr(message, column.key), message)  # the oldest, as one lookup would pick
    return found


async def apply_status_reports(
    runtime: Runtime, reports: list[StatusReport], *, source: str, inbox: str
) -> list[ReportOutcome]:
    """Apply a group of reports in one transaction; one outcome per report, in order.
    `source` names the reporter in the history, `inbox` the webhook in the inbox."""
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        by_id = await _locked_messages(session, Message.provider_message_id, {r.provider_message_id for r in reports})
        # A crash kept us from storing the provider id: the send key in the callback URL names it.
        keys = {r.send_key for r in reports if r.send_key and r.provider_message_id not in by_id}
        by_key = await _locked_messages(session, Message.send_key, keys)
        messages = [by_id.get(r.provider_message_id) or by_key.get(r.send_key or "") for r in reports]
        receipts = dict.fromkeys(r.receipt_id for r, m in zip(reports, messages) if m is not None)
        first_time = {
            receipt_id
            for receipt_id, _ in await insert_many_returning(
                session,
                WebhookReceipt,
                [dict(source=inbox, external_id=receipt_id, received_at=now) for receipt_id in receipts],
                ["source", "external_id"],
                WebhookReceipt.external_id,
            )
        }
        outcomes = []
        for report, message in zip(reports, messages):
            if message is None:
                outcomes.append(UNKNOWN_MESSAGE)
                continue
            applied = report.receipt_id in first_time
            first_time.discard(report.receipt_id)  # the same report twice in one group: once
            if applied:
                await record_status(
                    session,
                    message,
                    source=source,
                    status=report.status,
                    now=now,
                    provider_message_id=report.provider_message_id,
                    error_code=report.error_code,
                    detail=report.detail,
                    reason=report.reason,
                    locked=True,
                )
            outcomes.append(ReportOutcome(message.id, applied, message.channel, message.cost is not None))
    return outcomes
