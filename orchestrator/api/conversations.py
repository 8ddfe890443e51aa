"""Two-way conversations: threads of inbound and outbound messages, and agent replies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlmodel import col, func, select

from orchestrator.api.parameters import Offset, RowId
from orchestrator.clock import UtcDatetime
from orchestrator.conversations.agent import ReplyRefused, agent_reply
from orchestrator.conversations.threads import load_thread, whatsapp_window_open
from orchestrator.customers.consent import load_permissions
from orchestrator.events.schemas import Text
from orchestrator.storage.feedback_models import Conversation
from orchestrator.storage.models import Customer
from orchestrator.web.dependencies import RuntimeDep, SessionDep
from orchestrator.web.responses import CONFLICT, NOT_FOUND

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


class ConversationSummary(BaseModel):
    id: int
    user_id: str
    channel: str
    status: str
    last_message_at: UtcDatetime
    last_inbound_at: UtcDatetime | None
    whatsapp_window_open: bool | None = None


class ThreadEntry(BaseModel):
    direction: str  # inbound | outbound
    at: UtcDatetime
    body: str | None
    status: str | None = None
    message_id: int | None = None
    source: str | None = None  # keyword, auto_reply, agent, journey step, ...


class ConversationThread(ConversationSummary):
    messages: list[ThreadEntry]


class ConversationPage(BaseModel):
    items: list[ConversationSummary]
    total: int


class AgentReply(BaseModel):
    body: Text = Field(min_length=1, max_length=1600)
    agent: Text | None = Field(default=None, max_length=100)


def _summary(conversation: Conversation, customer: Customer, now: datetime) -> ConversationSummary:
    return ConversationSummary(
        id=conversation.id,
        user_id=customer.user_id,
        channel=conversation.channel,
        status=conversation.status,
        last_message_at=conversation.last_message_at,
        last_inbound_at=conversation.last_inbound_at,
        whatsapp_window_open=whatsapp_window_open(conversation, customer, now),
    )


@router.get("", response_model=ConversationPage)
async def list_conversations(
    session: SessionDep,
    runtime: RuntimeDep,
    status: str | None = None,
    channel: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> ConversationPage:
    query = select(Conversation, Customer).join(Customer, col(Customer.id) == col(Conversation.customer_id))
    if status:
        query = query.where(Conversation.status == status)
    if channel:
        query = query.where(Conversation.channel == channel)
    total = (await session.exec(select(func.count()).select_from(query.subquery()))).one()
    rows = (
        await session.exec(query.order_by(col(Conversation.last_message_at).desc()).limit(limit).offset(offset))
    ).all()
    now = runtime.clock.now()
    return ConversationPage(items=[_summary(c, customer, now) for c, customer in rows], total=total)


async def _load(session, conversation_id: int) -> tuple[Conversation, Customer]:
    row = (
        await session.exec(
            select(Conversation, Customer)
            .join(Customer, col(Customer.id) == col(Conversation.customer_id))
            .where(Conversation.id == conversation_id)
        )
    ).first()
    if row is None:
        raise HTTPException(404, f"no conversation {conversation_id}")
    return row


@router.get("/{conversation_id}", response_model=ConversationThread, responses=NOT_FOUND)
async def get_conversation(conversation_id: RowId, session: SessionDep, runtime: RuntimeDep) -> ConversationThread:
    conversation, customer = await _load(session, conversation_id)
    entries = [ThreadEntry(**vars(item)) for item in await load_thread(session, conversation, customer)]
    summary = _summary(conversation, customer, runtime.clock.now())
    return ConversationThread(**summary.model_dump(), messages=entries)


@router.post(
    "/{conversation_id}/messages", response_model=ThreadEntry, status_code=202, responses={**NOT_FOUND, **CONFLICT}
)
async def reply(conversation_id: RowId, body: AgentReply, session: SessionDep, runtime: RuntimeDep) -> ThreadEntry:
    """Queue an agent's reply; the worker sends it (SMS any time, WhatsApp inside the window)."""
    async with session.begin():
        conversation, customer = await _load(session, conversation_id)
        permissions = (await load_permissions(session, [customer], runtime.settings.erasure_key))[customer.id]
        try:
            message = agent_reply(conversation, customer, permissions, body.body, body.agent, runtime.clock.now())
        except ReplyRefused as refusal:
            raise HTTPException(409, str(refusal)) from None
        session.add(message)
        await session.flush()
    return ThreadEntry(
        direction="outbound",
        at=message.created_at,
        body=message.body,
        status=message.status,
        message_id=message.id,
        source=message.status_reason,
    )
