"""Conversions: a goal event credited to one message, by this order of precedence:

1. Click attribution: the message whose tracked link was clicked last before the order
   (by each message's first counted click; e-mail, SMS or WhatsApp alike). A click is the
   customer acting on that message, so it outranks a later message that merely arrived.
   Link previews and scanners never set a click (docs/links.md), so they earn nothing.
2. Otherwise last touch: the last message that reached the customer, "reached" meaning
   delivered (a provider receipt).

Only messages of enrollments whose goal this event is, inside their goal window, can earn
the credit, and only for what happened before the order. An order converts once, keyed by
its `order_id` (or the event's messageId when it has none).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal, InvalidOperation

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.clock import utc
from orchestrator.storage.feedback_models import Conversion
from orchestrator.storage.models import Enrollment, Event, Message
from orchestrator.storage.queries import insert_ignoring_conflict

REVENUE_PROPERTIES = ("revenue", "total", "value")


def in_holdout(journey_id: str, user_id: str, percent: float) -> bool:
    """Deterministic per customer and journey, so re-entries land in the same group."""
    if percent <= 0:
        return False
    bucket = int.from_bytes(hashlib.sha256(f"{journey_id}:{user_id}".encode()).digest()[:4], "big") % 10000
    return bucket < percent * 100


def _revenue(properties: dict) -> Decimal | None:
    for name in REVENUE_PROPERTIES:
        if properties.get(name) is not None:
            try:
                return Decimal(str(properties[name])).quantize(Decimal("0.01"))
            except InvalidOperation:
                return None
    return None


def _clicked_at(message: Message, before: datetime) -> datetime | None:
    clicked = utc(message.first_clicked_at) if message.first_clicked_at else None
    return clicked if clicked is not None and clicked <= before else None


def _touched_at(message: Message, before: datetime) -> datetime | None:
    """When the message reached the customer: delivered, or clicked (a click proves it
    arrived even where no delivery receipt exists)."""
    touches = [t for t in (message.delivered_at and utc(message.delivered_at), _clicked_at(message, before)) if t]
    eligible = [t for t in touches if t <= before]
    return min(eligible) if eligible else None


def credited_message(messages: list[Message], before: datetime) -> Message | None:
    """The message an order at `before` is credited to (module docstring), or None."""
    clicked = [(at, m.id, m) for m in messages if (at := _clicked_at(m, before)) is not None]
    if clicked:
        return max(clicked, key=lambda entry: entry[:2])[2]
    touched = [(at, m.id, m) for m in messages if (at := _touched_at(m, before)) is not None]
    return max(touched, key=lambda entry: entry[:2])[2] if touched else None


async def attribute_conversion(
    session: AsyncSession, event: Event, enrollments: list[Enrollment], now: datetime
) -> None:
    candidates = [e for e in enrollments if not e.holdout]
    if not candidates:
        return
    with session.no_autoflush:  # pending enrollment changes do not affect this read; flushing them per order is costly
        messages = (
            await session.exec(select(Message).where(col(Message.enrollment_id).in_([e.id for e in candidates])))
        ).all()
    message = credited_message(list(messages), now)
    if message is None:
        return  # nothing reached the customer before the order: not ours to claim
    properties = event.properties or {}
    await insert_ignoring_conflict(
        session,
        Conversion,
        dict(
            order_key=str(properties.get("order_id") or f"event:{event.message_id}"),
            event_id=event.id,
            customer_id=event.customer_id,
            enrollment_id=message.enrollment_id,
            journey_id=message.journey_id,
            message_id=message.id,
            step_id=message.step_id,
            channel=message.channel,
            template=message.template,
            revenue=_revenue(properties),
            currency=(str(properties.get("currency") or "") or None),
            converted_at=now,
        ),
        ["order_key"],
    )
