"""A conversation's thread: what the customer sent us and what we sent them, in time order.

The outbound side is every reply in this conversation and every journey message on its
channel (a reply often answers one), never a skipped message (it was not sent). The API and
the console both read threads through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.clock import utc
from orchestrator.storage.feedback_models import Conversation, InboundMessage
from orchestrator.storage.models import Customer, Message
from orchestrator.vocabulary import Channel, MessageStatus


@dataclass(frozen=True)
class ThreadItem:
    direction: str  # inbound | outbound
    at: datetime
    body: str | None
    status: str | None = None
    message_id: int | None = None
    source: str | None = None  # keyword, auto_reply, agent, journey/step, ...


def whatsapp_window_open(conversation: Conversation, customer: Customer, now: datetime) -> bool | None:
    """Whether a free-form WhatsApp reply may go out now (None for other channels)."""
    if conversation.channel != Channel.whatsapp:
        return None
    return bool(customer.whatsapp_window_until and utc(customer.whatsapp_window_until) > now)


async def load_thread(session: AsyncSession, conversation: Conversation, customer: Customer) -> list[ThreadItem]:
    inbound = (
        await session.exec(select(InboundMessage).where(InboundMessage.conversation_id == conversation.id))
    ).all()
    outbound = (
        await session.exec(
            select(Message).where(
                Message.customer_id == customer.id,
                Message.channel == conversation.channel,
                or_(col(Message.conversation_id) == conversation.id, col(Message.conversation_id).is_(None)),
                col(Message.status).not_in([MessageStatus.skipped]),
            )
        )
    ).all()
    items = [ThreadItem("inbound", m.received_at, m.body, source=m.handled_by) for m in inbound]
    items += [
        ThreadItem(
            "outbound",
            m.sent_at or m.created_at,
            m.body,
            status=m.status,
            message_id=m.id,
            source=m.status_reason if m.conversation_id else f"{m.journey_id}/{m.step_id}",
        )
        for m in outbound
    ]
    return sorted(items, key=lambda item: utc(item.at))
