"""Conversions: a goal event credited to the last message that reached the customer.

"Reached" means delivered (a provider receipt), or for e-mail also clicked (a click proves
it arrived even where no delivery receipt exists). Only messages of enrollments whose goal
this event is, inside their goal window, can earn the credit. An order converts once,
keyed by its `order_id` (or the event's messageId when it has none).
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
from orchestrator.vocabulary import Channel

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


def _touched_at(message: Message, before: datetime) -> datetime | None:
    touches = [utc(message.delivered_at)] if message.delivered_at else []
    if message.channel == Channel.email and message.first_clicked_at:
        touches.append(utc(message.first_clicked_at))
    eligible = [t for t in touches if t <= before]
    return min(eligible) if eligible else None


async def attribute_conversion(session: AsyncSession, event: Event, enrollments: list[Enrollment], now: datetime) -> None:
    candidates = [e for e in enrollments if not e.holdout]
    if not candidates:
        return
    with session.no_autoflush:  # pending enrollment changes do not affect this read; flushing them per order is costly
        messages = (await session.exec(select(Message).where(
            col(Message.enrollment_id).in_([e.id for e in candidates])))).all()
    touched = [(at, m) for m in messages if (at := _touched_at(m, now)) is not None]
    if not touched:
        return  # nothing reached the customer before the order: not ours to claim
    _, message = max(touched, key=lambda pair: (pair[0], pair[1].id))
    properties = event.properties or {}
    await insert_ignoring_conflict(session, Conversion, dict(
        order_key=str(properties.get("order_id") or f"event:{event.message_id}"), event_id=event.id,
        customer_id=event.customer_id, enrollment_id=message.enrollment_id, journey_id=message.journey_id,
        message_id=message.id, step_id=message.step_id, channel=message.channel, template=message.template,
        revenue=_revenue(properties), currency=(str(properties.get("currency") or "") or None),
        converted_at=now), ["order_key"])
