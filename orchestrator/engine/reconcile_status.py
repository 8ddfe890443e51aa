"""Fetch the status of `sent` messages whose status callbacks never came.

Status callbacks get lost: the receiver was down through the provider's retries, a burst
timed them out. Without them a message stays `sent` forever and delivery rates undercount.
A message still `sent` `reconcile_status_after_seconds` after it left, on a channel whose
adapter can ask its provider, gets its status fetched, then again each time its age has
doubled (so a carrier that never reports costs a handful of requests, not one per round),
until it is final or `reconcile_status_give_up_seconds` old.

Pacing lives in `next_attempt_at`, unused by a message once it has left: the next fetch is
due when `next_attempt_at + reconcile_status_after_seconds` has passed. Shifted so, the
due rows are one range of the existing `(status, next_attempt_at)` index, for first
fetches (whose `next_attempt_at` is still the send's due time, before `sent_at`) and later
ones alike. NULL means nothing more to ask (given up, or an adapter that cannot ask).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam

from orchestrator.channels.base import Channel, ChannelAdapter, Found, Lookup
from orchestrator.clock import utc
from orchestrator.delivery.statuses import record_status
from orchestrator.runtime import Runtime
from orchestrator.storage.models import Message
from orchestrator.storage.queries import supports_skip_locked
from orchestrator.vocabulary import MessageStatus

log = logging.getLogger("orchestrator.reconcile")

_MESSAGES = Message.__table__
_SET_NEXT = (
    sa.update(_MESSAGES).where(_MESSAGES.c.id == bindparam("message_id")).values(next_attempt_at=bindparam("next_at"))
)


async def claim_stale_sent(runtime: Runtime, channel: Channel, provider: str) -> list[Any]:
    settings, now = runtime.settings, runtime.clock.now()
    status_after = timedelta(seconds=settings.reconcile_status_after_seconds)
    due_mark = now - status_after
    async with runtime.sessions() as session, session.begin():
        query = (
            sa.select(_MESSAGES.c.id, _MESSAGES.c.provider_message_id, _MESSAGES.c.sent_at)
            .where(
                _MESSAGES.c.status == MessageStatus.sent,
                _MESSAGES.c.next_attempt_at <= due_mark,
                _MESSAGES.c.channel == channel.value,
                _MESSAGES.c.provider == provider,
                _MESSAGES.c.sent_at <= due_mark,
                _MESSAGES.c.provider_message_id.is_not(None),
            )
            .order_by(_MESSAGES.c.next_attempt_at)
            .limit(settings.reconcile_batch_size)
        )
        if supports_skip_locked(session):
            query = query.with_for_update(skip_locked=True)
        connection = await session.connection()
        rows = list(await connection.execute(query))
        if rows:
            await connection.execute(
                _SET_NEXT,
                [
                    {"message_id": row.id, "next_at": next_fetch_mark(now - utc(row.sent_at), now, settings)}
                    for row in rows
                ],
            )
        return rows


def next_fetch_mark(age: timedelta, now, settings) -> Any:
    """The `next_attempt_at` that makes the next fetch due once the age has doubled (at
    least `reconcile_retry_seconds` from now); None past the give-up age."""
    if age.total_seconds() >= settings.reconcile_status_give_up_seconds:
        return None
    wait = max(age, timedelta(seconds=settings.reconcile_retry_seconds))
    return now + wait - timedelta(seconds=settings.reconcile_status_after_seconds)


async def refresh_stale_statuses(
    runtime: Runtime, channel: Channel, adapter: ChannelAdapter, wait: Callable[[], Awaitable[None]]
) -> tuple[int, int]:
    """Fetch and apply; returns (fetched, changed)."""
    rows = await claim_stale_sent(runtime, channel, adapter.provider)
    fetched = changed = 0
    for row in rows:
        await wait()
        try:
            lookup = await adapter.fetch_status(row.provider_message_id)
        except Exception as error:  # an adapter bug must not stop the round
            log.exception("fetching the status of %s failed", row.provider_message_id)
            lookup = Lookup.unreachable(f"{type(error).__name__}: {error}")
        if lookup.outcome != Found.found:
            continue
        fetched += 1
        changed += await apply_fetched(runtime, row.id, lookup, adapter.provider)
    return fetched, changed


async def apply_fetched(runtime: Runtime, message_id: int, lookup: Lookup, provider: str) -> int:
    record, now = lookup.records[0], runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        message = await session.get(Message, message_id)
        if message is None:
            return 0
        before = message.status
        await record_status(
            session,
            message,
            source=provider,
            status=record.status,
            now=now,
            error_code=record.error_code,
            detail={"fetched": True},
            reason=f"{provider} error {record.error_code}" if record.error_code else None,
        )
        if message.cost is None and record.cost is not None:
            message.cost, message.cost_currency = record.cost, record.cost_currency
        return int(message.status != before)
