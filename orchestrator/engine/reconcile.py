"""Settle ambiguous sends by asking the provider; never by guessing.

A message stays `sending` only while a worker waits for the provider's answer. Found there
long after (`reconcile_after_seconds`), its worker died between claim and answer; a send
whose answer was lost (a read timeout, a dropped connection) is `unknown`. Either way the
provider may or may not have it, and Twilio's Messages API takes no idempotency key, so
sending again blindly could text the customer twice. Where the adapter can ask its provider
(`ChannelAdapter.can_look_up_sends`):

- found: adopt the provider's id and status. Never sent again.
- not found, and the attempt is older than `reconcile_resend_after_seconds` (requests still
  in flight, the provider's own lag): queued again under the same send key, due at once.
  The cut-off attempt is given back (`attempts` - 1) and counted in `requeues` instead:
  a crash must not use up the retry budget meant for the provider's refusals. Past
  `MAX_REQUEUES` the message fails for a person instead (and its fallback channel is tried).
- unreachable, or not found too early: asked again `reconcile_retry_seconds` later.

Where it cannot (SMTP), a `sending` row past the age becomes `unknown` for a person to
decide (`POST /v1/messages/{id}/retry`), as before.

A `sent` message whose status callbacks were lost would stay `sent` forever; one still
without a final status `reconcile_status_after_seconds` after it left gets its status
fetched (`reconcile_status.py`).

Every worker runs rounds as an APScheduler job of its own, off the send path: a round
claims at most `reconcile_batch_size` rows of each kind (`FOR UPDATE SKIP LOCKED`, pushing
their `next_attempt_at` forward, so two workers never ask about the same row at once), and
asks at most `reconcile_lookups_per_second`. Every write is conditional on the row being
exactly as it was read (status and `sending_at`): a worker that meanwhile recorded the
provider's answer, or another reconciler, always wins over a stale decision.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.channels.base import Channel, ChannelAdapter, Found, Lookup, OutboundMessage, ProviderRecord
from orchestrator.clock import utc
from orchestrator.delivery.statuses import record_status
from orchestrator.engine.fallback import queue_fallbacks
from orchestrator.engine.reconcile_status import refresh_stale_statuses
from orchestrator.engine.retry import MAX_REQUEUES
from orchestrator.runtime import Runtime
from orchestrator.storage.models import Message
from orchestrator.storage.queries import supports_skip_locked
from orchestrator.vocabulary import MessageStatus

log = logging.getLogger("orchestrator.reconcile")

_MESSAGES = Message.__table__
AMBIGUOUS = (MessageStatus.sending, MessageStatus.unknown)
UNKNOWN_REASON = (
    "interrupted between claim and provider answer; the provider may have accepted it, "
    "and it cannot be asked, so it is not resent automatically"
)
FOUND_REASON = "the provider had it (found by the reconciler after an interrupted send)"
RESENT_REASON = "the provider had no record of it: sent again under the same send key"
GAVE_UP_REASON = (
    "the provider never received it: cut off {requeues} times before it got there; not sent again automatically"
)


@dataclass
class RoundReport:
    marked_unknown: int = 0
    adopted: int = 0
    requeued: int = 0
    gave_up: int = 0  # never received, and already requeued `MAX_REQUEUES` times: failed
    undecided: int = 0  # unreachable, or not found before the provider's lag was over
    statuses_fetched: int = 0
    statuses_changed: int = 0

    def __bool__(self) -> bool:
        return any(vars(self).values())


@dataclass
class Pacer:
    """At most `per_second` provider requests from this process, spread evenly."""

    per_second: float
    _next: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def wait(self) -> None:
        async with self._lock:
            loop = asyncio.get_running_loop()
            delay = self._next - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next = max(self._next, loop.time()) + 1 / self.per_second


def followed_adapters(runtime: Runtime) -> dict[Channel, ChannelAdapter]:
    """The channels whose adapter can ask its provider."""
    return {
        channel: adapter for channel in Channel if (adapter := runtime.channels.for_channel(channel)).can_look_up_sends
    }


async def reconcile_round(runtime: Runtime, pacer: Pacer | None = None) -> RoundReport:
    """One bounded round: ambiguous sends first (a customer may be waiting for them), then
    stale statuses."""
    report = RoundReport()
    pacer = pacer or Pacer(runtime.settings.reconcile_lookups_per_second)
    report.marked_unknown = await mark_unanswerable_sends_unknown(runtime)
    for channel, adapter in followed_adapters(runtime).items():
        await settle_ambiguous_sends(runtime, channel, adapter, pacer, report)
        fetched, changed = await refresh_stale_statuses(runtime, channel, adapter, pacer.wait)
        report.statuses_fetched += fetched
        report.statuses_changed += changed
    return report


async def mark_unanswerable_sends_unknown(runtime: Runtime) -> int:
    """`sending` past the age on a channel nobody can ask (or sent through another provider
    than today's): `unknown`, for a person."""
    now = runtime.clock.now()
    cutoff = now - timedelta(seconds=runtime.settings.reconcile_after_seconds)
    followed = followed_adapters(runtime)
    askable = sa.or_(
        sa.false(),
        *[
            sa.and_(_MESSAGES.c.channel == channel.value, _MESSAGES.c.provider == adapter.provider)
            for channel, adapter in followed.items()
        ],
    )
    async with runtime.sessions() as session, session.begin():
        result = await (await session.connection()).execute(
            sa.update(_MESSAGES)
            .where(_MESSAGES.c.status == MessageStatus.sending, _MESSAGES.c.sending_at < cutoff, sa.not_(askable))
            .values(status=MessageStatus.unknown, status_reason=UNKNOWN_REASON, updated_at=now, next_attempt_at=None)
        )
        return result.rowcount


_AMBIGUOUS_COLUMNS = (
    "id",
    "send_key",
    "channel",
    "to_address",
    "subject",
    "body",
    "html",
    "template_metadata",
    "marketing",
    "status",
    "sending_at",
    "attempts",
    "requeues",
    "fallback_channel",
)


async def claim_ambiguous_sends(runtime: Runtime, channel: Channel, provider: str) -> list[Any]:
    """Up to a batch of this channel's `sending`/`unknown` rows past the age and due a look;
    their next look is pushed `reconcile_retry_seconds` ahead in the same statement."""
    settings, now = runtime.settings, runtime.clock.now()
    cutoff = now - timedelta(seconds=settings.reconcile_after_seconds)
    async with runtime.sessions() as session, session.begin():
        due = (
            sa.select(_MESSAGES.c.id)
            .where(
                _MESSAGES.c.status.in_(AMBIGUOUS),
                _MESSAGES.c.next_attempt_at <= now,
                _MESSAGES.c.channel == channel.value,
                _MESSAGES.c.provider == provider,
                _MESSAGES.c.sending_at < cutoff,
            )
            .order_by(_MESSAGES.c.next_attempt_at)
            .limit(settings.reconcile_batch_size)
        )
        if supports_skip_locked(session):
            due = due.with_for_update(skip_locked=True)
        rows = await (await session.connection()).execute(
            sa.update(_MESSAGES)
            .where(_MESSAGES.c.id.in_(due.scalar_subquery()))
            .values(next_attempt_at=now + timedelta(seconds=settings.reconcile_retry_seconds))
            .returning(*[_MESSAGES.c[name] for name in _AMBIGUOUS_COLUMNS])
        )
        return list(rows)


def outbound_of(row: Any) -> OutboundMessage:
    metadata = dict(row.template_metadata or {})
    variables = metadata.pop("variables", {})
    return OutboundMessage(
        send_key=row.send_key,
        channel=Channel(row.channel),
        to=row.to_address or "",
        body=row.body or "",
        subject=row.subject,
        html=row.html,
        template_metadata=metadata,
        variables=variables,
        marketing=row.marketing,
    )


async def settle_ambiguous_sends(
    runtime: Runtime, channel: Channel, adapter: ChannelAdapter, pacer: Pacer, report: RoundReport
) -> None:
    rows = await claim_ambiguous_sends(runtime, channel, adapter.provider)

    async def ask(row: Any) -> Lookup:
        await pacer.wait()
        try:
            return await adapter.find_send(outbound_of(row), utc(row.sending_at))
        except Exception as error:  # an adapter bug must not stop the round; never a guess either
            log.exception("looking up %s failed", row.send_key)
            return Lookup.unreachable(f"{type(error).__name__}: {error}")

    lookups = await asyncio.gather(*(ask(row) for row in rows))
    resend_age = timedelta(seconds=runtime.settings.reconcile_resend_after_seconds)
    for row, lookup in zip(rows, lookups):
        now = runtime.clock.now()
        if lookup.outcome == Found.found and await adopt(runtime, row, lookup.records, adapter.provider):
            report.adopted += 1
        elif lookup.outcome == Found.not_found and now - utc(row.sending_at) >= resend_age:
            if row.requeues >= MAX_REQUEUES:
                report.gave_up += await give_up(runtime, row)
            else:
                report.requeued += await requeue(runtime, row)
        else:
            report.undecided += 1
            log.info("send %s still undecided: %s %s", row.send_key, lookup.outcome.value, lookup.detail or "")


async def _update_if_unchanged(session: AsyncSession, row: Any, **values: Any) -> bool:
    """Apply `values` only while the row is still exactly what the decision was based on (another
    worker, a late answer or a status callback may have moved it since); True if it was."""
    unchanged = sa.and_(
        _MESSAGES.c.id == row.id, _MESSAGES.c.status == row.status, _MESSAGES.c.sending_at == row.sending_at
    )
    changed = await (await session.connection()).execute(sa.update(_MESSAGES).where(unchanged).values(**values))
    return changed.rowcount == 1


async def adopt(runtime: Runtime, row: Any, records: tuple[ProviderRecord, ...], provider: str) -> bool:
    """Take the first record no other message already owns; then apply its status."""
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        connection = await session.connection()
        owned = set(
            (
                await connection.execute(
                    sa.select(_MESSAGES.c.provider_message_id).where(
                        _MESSAGES.c.provider_message_id.in_([r.provider_message_id for r in records]),
                        _MESSAGES.c.id != row.id,
                    )
                )
            ).scalars()
        )
        record = next((r for r in records if r.provider_message_id not in owned), None)
        if record is None:
            return False
        if not await _update_if_unchanged(
            session,
            row,
            status=MessageStatus.sent,
            provider_message_id=record.provider_message_id,
            error_code=None,
            status_reason=FOUND_REASON,
            sent_at=record.created_at or now,
            updated_at=now,
            cost=record.cost,
            cost_currency=record.cost_currency,
        ):
            return False
        message = await session.get(Message, row.id)
        await record_status(
            session,
            message,
            source=provider,
            status=record.status,
            now=now,
            error_code=record.error_code,
            detail={"reconciled": True},
            reason=f"{provider} error {record.error_code}" if record.error_code else None,
        )
    return True


async def requeue(runtime: Runtime, row: Any) -> bool:
    """Queue a send the provider never got again, giving back the attempt it cut off."""
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        return await _update_if_unchanged(
            session,
            row,
            status=MessageStatus.queued,
            next_attempt_at=now,
            updated_at=now,
            error_code=None,
            status_reason=RESENT_REASON,
            attempts=max(row.attempts - 1, 0),
            requeues=row.requeues + 1,
        )


async def give_up(runtime: Runtime, row: Any) -> bool:
    """`failed` (and its fallback queued), as a send out of retries would be."""
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        if not await _update_if_unchanged(
            session,
            row,
            status=MessageStatus.failed,
            next_attempt_at=None,
            updated_at=now,
            error_code=None,
            status_reason=GAVE_UP_REASON.format(requeues=row.requeues + 1),
        ):
            return False
        if row.fallback_channel:
            await queue_fallbacks(session, runtime, [await session.get(Message, row.id)], now)
        return True
