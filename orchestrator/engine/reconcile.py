"""Settle sends a crash interrupted.

A message stays `sending` only while a worker waits for the provider. Found there long
after, its worker died between claiming it and recording the provider's answer: the
provider may or may not have accepted it. Twilio's Messages API takes no idempotency key,
so resending could text the customer twice. Policy: mark it `unknown`, count it, and leave
the decision to a person (`POST /v1/messages/{id}/retry`). Never resend on our own.
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, update

from orchestrator.runtime import Runtime
from orchestrator.storage.models import Message
from orchestrator.vocabulary import MessageStatus

UNKNOWN_REASON = (
    "interrupted between claim and provider answer; the provider may have accepted it, "
    "so it is not resent automatically"
)


async def settle_interrupted_sends(runtime: Runtime) -> int:
    now = runtime.clock.now()
    cutoff = now - timedelta(seconds=runtime.settings.reconcile_after_seconds)
    async with runtime.sessions() as session, session.begin():
        result = await session.exec(
            update(Message)
            .where(Message.status == MessageStatus.sending, col(Message.sending_at) < cutoff)
            .values(status=MessageStatus.unknown, status_reason=UNKNOWN_REASON, updated_at=now)
        )
        return result.rowcount
