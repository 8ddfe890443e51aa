"""An agent's reply in a conversation: queued like any message, sent by the dispatcher."""

from __future__ import annotations

import uuid
from datetime import datetime

from orchestrator.channels.base import Channel
from orchestrator.customers.consent import OPTED_OUT, SendPermissions
from orchestrator.engine.messages import address_for, whatsapp_window_refusal
from orchestrator.storage.feedback_models import Conversation
from orchestrator.storage.models import Customer, Message
from orchestrator.vocabulary import MessageStatus, SendKey


class ReplyRefused(Exception):
    pass


def conversational_reply_refusal(channel: Channel, permissions: SendPermissions, now: datetime) -> str | None:
    """Why no reply (an agent's or an automatic one) may go to this customer now, if it may not.

    A conversational reply needs no marketing opt-in, but STOP still means stop, and WhatsApp
    free-form text is only allowed inside the 24-hour window."""
    if permissions.consents.get(channel.value) == OPTED_OUT:
        return f"the customer opted out of {channel.value}"
    if channel == Channel.whatsapp:
        return whatsapp_window_refusal(permissions, {}, now)
    return None


def agent_reply(
    conversation: Conversation,
    customer: Customer,
    permissions: SendPermissions,
    body: str,
    agent: str | None,
    now: datetime,
) -> Message:
    channel = Channel(conversation.channel)
    if refusal := conversational_reply_refusal(channel, permissions, now):
        raise ReplyRefused(refusal)
    to = address_for(customer, channel)
    if not to:
        raise ReplyRefused(f"no {channel.value} address")
    conversation.status, conversation.last_message_at = "answered", now
    return Message(
        send_key=SendKey.agent_reply(conversation.id, uuid.uuid4().hex),
        customer_id=customer.id,
        channel=channel.value,
        to_address=to,
        body=body,
        marketing=False,
        status=MessageStatus.queued,
        status_reason=f"agent reply by {agent or 'agent'}",
        conversation_id=conversation.id,
        template_metadata={},
        created_at=now,
        updated_at=now,
        next_attempt_at=now,
    )
