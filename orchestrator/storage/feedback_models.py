"""Tables for what comes back from providers and customers: delivery statuses, consent,
suppressions, inbound messages, conversations, NPS answers.

Webhooks are idempotent through `webhook_receipts` (UNIQUE(source, external_id)): a
replayed callback finds its receipt and changes nothing. Consent is an append-only ledger;
the current state is the latest record per customer and channel.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from orchestrator.storage.models import BigId, _json, _timestamp


class WebhookReceipt(SQLModel, table=True):
    __tablename__ = "webhook_receipts"
    __table_args__ = (sa.UniqueConstraint("source", "external_id"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    source: str = Field(max_length=32)  # twilio-status | twilio-inbound | sendgrid | tracking
    external_id: str = Field(max_length=255)
    received_at: datetime = _timestamp()


class MessageStatusEvent(SQLModel, table=True):
    """Every status a provider reported for a message, in arrival order."""

    __tablename__ = "message_status_events"
    __table_args__ = (
        sa.Index("ix_status_events_message", "message_id", "id"),
        sa.Index("ix_status_events_status", "status", "message_id"),  # KPI rollup: bounced messages
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    message_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("messages.id"), nullable=False))
    source: str = Field(max_length=32)
    status: str = Field(max_length=32)  # queued, sent, delivered, read, undelivered, failed, open, click, bounce...
    error_code: str | None = Field(default=None, max_length=32)
    detail: dict[str, Any] = _json()
    occurred_at: datetime = _timestamp()


class Consent(SQLModel, table=True):
    __tablename__ = "consents"
    __table_args__ = (
        sa.Index("ix_consents_customer_channel", "customer_id", "channel", "id"),
        sa.Index("ix_consents_recorded", "recorded_at"),  # KPI rollup: opt-outs since the last refresh
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    customer_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("customers.id"), nullable=False))
    channel: str = Field(max_length=16)
    status: str = Field(max_length=16)  # opted_in | opted_out
    source: str = Field(max_length=32)  # sms_keyword, web_form, api, unsubscribe_link, identify, ...
    evidence: dict[str, Any] = _json()
    recorded_at: datetime = _timestamp()


class Suppression(SQLModel, table=True):
    """An address no marketing may go to (hard bounce, spam report), whoever owns it."""

    __tablename__ = "suppressions"
    __table_args__ = (sa.UniqueConstraint("channel", "address"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    address: str = Field(max_length=320)
    reason: str = Field(max_length=64)
    created_at: datetime = _timestamp()


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    __table_args__ = (sa.UniqueConstraint("customer_id", "channel"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    customer_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("customers.id"), nullable=False))
    channel: str = Field(max_length=16)
    status: str = Field(default="open", max_length=24)  # open | waiting_for_agent | answered
    last_inbound_at: datetime | None = _timestamp(nullable=True)
    last_message_at: datetime = _timestamp()
    created_at: datetime = _timestamp()


class InboundMessage(SQLModel, table=True):
    __tablename__ = "inbound_messages"
    __table_args__ = (
        sa.Index("ix_inbound_conversation", "conversation_id", "received_at"),
        sa.Index("ix_inbound_received", "received_at"),  # KPI rollup: replies since the last refresh
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    provider_message_id: str = Field(sa_column=sa.Column(sa.String(255), nullable=False, unique=True))
    customer_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("customers.id"), nullable=False))
    conversation_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("conversations.id"), nullable=True)
    )
    channel: str = Field(max_length=16)
    from_address: str = Field(max_length=64)
    to_address: str = Field(max_length=64)
    body: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    keyword: str | None = Field(default=None, max_length=32)  # opt_out | opt_in | help
    handled_by: str | None = Field(default=None, max_length=24)  # keyword | auto_reply | journey | agent
    received_at: datetime = _timestamp()


class NpsResponse(SQLModel, table=True):
    __tablename__ = "nps_responses"

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    customer_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("customers.id"), nullable=False))
    enrollment_id: int | None = Field(default=None, sa_column=sa.Column(BigId, nullable=True))
    journey_id: str | None = Field(default=None, max_length=100)
    inbound_message_id: int | None = Field(default=None, sa_column=sa.Column(BigId, nullable=True, unique=True))
    score: int
    received_at: datetime = _timestamp()


class Conversion(SQLModel, table=True):
    """A goal event credited to the last message that reached the customer before it.

    One order converts once (UNIQUE order_key), however often the event is sent and however
    many journeys had it as their goal: the last touch wins.
    """

    __tablename__ = "conversions"
    __table_args__ = (
        # GET /v1/conversions pages through (converted_at, id), whole or for one journey;
        # the KPI rollup reads conversions since its last refresh through the second
        sa.Index("ix_conversions_journey", "journey_id", "converted_at", "id"),
        sa.Index("ix_conversions_converted", "converted_at", "id"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    order_key: str = Field(sa_column=sa.Column(sa.String(255), nullable=False, unique=True))
    event_id: int = Field(sa_column=sa.Column(BigId, nullable=False))
    customer_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("customers.id"), nullable=False))
    enrollment_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("enrollments.id"), nullable=False))
    journey_id: str = Field(max_length=100)
    message_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("messages.id"), nullable=False))
    step_id: str | None = Field(default=None, max_length=255)
    channel: str = Field(max_length=16)
    template: str | None = Field(default=None, max_length=255)
    revenue: Decimal | None = Field(default=None, sa_column=sa.Column(sa.Numeric(14, 2), nullable=True))
    currency: str | None = Field(default=None, max_length=3)
    converted_at: datetime = _timestamp()
