"""Tables. Invariants live here as constraints, not in application code:

- `events.message_id` is unique: the same Segment event twice has one effect;
- `messages.send_key` is unique: a journey step can never produce two messages;
- at most one active enrollment per (journey, customer), by a partial unique index.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from orchestrator.vocabulary import EnrollmentStatus

JSONColumn = sa.JSON().with_variant(JSONB(), "postgresql")
# Python None as SQL NULL on every database (JSONColumn writes JSON `null` on SQLite), for a
# column that is queried with IS NULL.
NullableJSONColumn = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only


def _timestamp(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=nullable, index=index))


def _json() -> Any:
    return Field(default_factory=dict, sa_column=sa.Column(JSONColumn, nullable=False))


class Customer(SQLModel, table=True):
    __tablename__ = "customers"
    __table_args__ = (
        # GET /v1/customers?q=: a userId prefix (LIKE 'q%' needs text_pattern_ops on PostgreSQL
        # unless the database collation is C), an e-mail address or a phone number
        sa.Index("ix_customers_user_id_prefix", "user_id", postgresql_ops={"user_id": "text_pattern_ops"}),
        sa.Index("ix_customers_email", "email"),
        sa.Index("ix_customers_phone", "phone"),
        # An erased customer (customers/erasure.py) keeps its row for the aggregates that
        # reference it, never an address.
        sa.CheckConstraint(
            "erased_at IS NULL OR (email IS NULL AND phone IS NULL AND whatsapp IS NULL)",
            name="ck_customers_erased_holds_no_address",
        ),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    user_id: str = Field(sa_column=sa.Column(sa.String(255), nullable=False, unique=True))
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    whatsapp: str | None = Field(default=None, max_length=32)
    locale: str | None = Field(default=None, max_length=35)
    timezone: str | None = Field(default=None, max_length=64)
    timezone_source: str | None = Field(default=None, max_length=16)  # a TimezoneSource; None: unknown (UTC)
    traits: dict[str, Any] = _json()
    # Kept here (not only in conversations) because every WhatsApp send checks it.
    whatsapp_window_until: datetime | None = _timestamp(nullable=True)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()
    erased_at: datetime | None = _timestamp(nullable=True)  # personal data erased on request


class ErasedAddress(SQLModel, table=True):
    """The tombstone of an erased customer's address: a keyed hash (HMAC-SHA256 under the
    service's `erasure_key`) of the normalised e-mail address or phone number, never the
    address itself, so nothing is sent to it again whoever it comes back on."""

    __tablename__ = "erased_addresses"
    __table_args__ = (sa.CheckConstraint("length(address_hash) = 64", name="ck_erased_addresses_hash"),)

    address_hash: str = Field(primary_key=True, max_length=64)  # hex
    erased_at: datetime = _timestamp()


class Event(SQLModel, table=True):
    __tablename__ = "events"
    __table_args__ = (
        sa.Index("ix_events_customer_received", "customer_id", "received_at"),
        # web sessions (page and screen views) of visitors not identified yet
        sa.Index("ix_events_anonymous", "anonymous_id", "received_at"),
        # the visits fold sessionizes the page and screen views received since its last run (kpis/site_fold.py)
        sa.Index(
            "ix_events_views_received",
            "received_at",
            postgresql_where=sa.text("type IN ('page', 'screen')"),
            sqlite_where=sa.text("type IN ('page', 'screen')"),
        ),
        # the rollup refresh folds the order events received since its last run (kpis/orders.py)
        sa.Index(
            "ix_events_orders_received",
            "received_at",
            postgresql_where=sa.text("type = 'track' AND name = 'Order Completed'"),
            sqlite_where=sa.text("type = 'track' AND name = 'Order Completed'"),
        ),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    message_id: str = Field(sa_column=sa.Column(sa.String(255), nullable=False, unique=True))
    # None for a call with only an anonymousId (a visitor not identified yet)
    customer_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("customers.id"), nullable=True)
    )
    anonymous_id: str | None = Field(default=None, max_length=255)
    type: str = Field(max_length=16)  # a Segment call type: track | identify | page | screen | group | alias
    name: str | None = Field(default=None, max_length=255)  # track event, page or screen name, groupId
    properties: dict[str, Any] = _json()
    context: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column(JSONColumn, nullable=True)
    )  # Segment context, as sent
    timestamp: datetime = _timestamp()  # when it happened, as the sender says
    received_at: datetime = _timestamp()  # when we accepted it, by our clock
    # The traits of an identify that were stored but not applied: contact addresses and consent
    # sent from a web page without a valid `context.userHash` (events/site_identity.py).
    withheld_traits: list[str] | None = Field(default=None, sa_column=sa.Column(NullableJSONColumn, nullable=True))
    # A track sent from a web page without a valid `context.userHash`: true; no journey reacted
    # to it and segments do not count it (events/site_identity.py). NULL otherwise.
    unverified: bool | None = None


class IdentityLink(SQLModel, table=True):
    """An anonymousId (or an alias's previousId) known to be this customer: from an
    `identify` or `alias` call that named both. The first link of an id stands."""

    __tablename__ = "identity_links"

    anonymous_id: str = Field(primary_key=True, max_length=255)
    customer_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("customers.id"), nullable=False, index=True))
    linked_at: datetime = _timestamp()


class JourneyVersion(SQLModel, table=True):
    __tablename__ = "journey_versions"
    __table_args__ = (sa.UniqueConstraint("journey_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    journey_id: str = Field(max_length=100)
    version: str = Field(max_length=32)
    source: dict[str, Any] = _json()
    source_path: str = Field(max_length=1000)
    loaded_at: datetime = _timestamp()


class JourneyState(SQLModel, table=True):
    """Which version of a journey takes new entrants, and whether it is paused.

    Shared by every process: each refreshes its catalog from here, so a reload or a pause
    done through one API process reaches all workers.
    """

    __tablename__ = "journey_states"

    journey_id: str = Field(primary_key=True, max_length=100)
    current_version: str | None = Field(default=None, max_length=32)  # None: retired (file removed)
    paused: bool = False
    updated_at: datetime = _timestamp()


class Enrollment(SQLModel, table=True):
    __tablename__ = "enrollments"
    __table_args__ = (
        sa.Index("ix_enrollments_due", "status", "due_at"),
        sa.Index("ix_enrollments_customer", "customer_id", "journey_id"),
        # KPI rollup (holdout lift): enrollments that entered or converted since the last refresh
        sa.Index("ix_enrollments_entered", "entered_at"),
        sa.Index("ix_enrollments_converted", "converted_at"),
        sa.Index("ix_enrollments_ended", "ended_at"),  # KPI rollup (funnel): enrollments that ended since
        sa.Index(
            "uq_enrollments_one_active",
            "journey_id",
            "customer_id",
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        ),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    journey_id: str = Field(max_length=100)
    journey_version: str = Field(max_length=32)
    customer_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("customers.id"), nullable=False))
    status: str = Field(default=EnrollmentStatus.active, max_length=16)  # an EnrollmentStatus
    cursor: str | None = Field(default=None, max_length=255)  # the step to run next
    waiting_for: str | None = Field(default=None, max_length=255)  # event awaited by a wait_for step
    due_at: datetime | None = _timestamp(nullable=True)
    entered_at: datetime = _timestamp()
    ended_at: datetime | None = _timestamp(nullable=True)
    exit_reason: str | None = Field(default=None, max_length=255)
    trigger_event_id: int | None = Field(default=None, sa_column=sa.Column(BigId, nullable=True))
    context: dict[str, Any] = _json()  # the trigger event's properties
    holdout: bool = False  # in the journey's control group: enrolled, never messaged
    # The last hold of a send step (quiet hours), kept after it passes so the timeline can tell it.
    held_by: str | None = Field(default=None, max_length=32)
    held_at: datetime | None = _timestamp(nullable=True)
    held_until: datetime | None = _timestamp(nullable=True)
    goal_deadline: datetime | None = _timestamp(nullable=True)
    converted_at: datetime | None = _timestamp(nullable=True)
    conversion_event_id: int | None = Field(default=None, sa_column=sa.Column(BigId, nullable=True))


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        sa.Index("ix_messages_dispatch", "status", "next_attempt_at"),
        # The dispatch claim (engine/dispatch.py), polled by every worker: only queued messages,
        # so the planner takes it even with statistics from when most messages were queued
        # (it chose a scan of the whole table then, on every poll).
        sa.Index(
            "ix_messages_queued",
            "channel",
            "next_attempt_at",
            postgresql_where=sa.text("status = 'queued'"),
            sqlite_where=sa.text("status = 'queued'"),
        ),
        # GET /v1/messages pages through (created_at, id), whole or filtered by one of these
        sa.Index("ix_messages_customer", "customer_id", "created_at", "id"),
        sa.Index("ix_messages_journey", "journey_id", "created_at", "id"),
        sa.Index("ix_messages_status_created", "status", "created_at", "id"),
        sa.Index("ix_messages_template", "template", "created_at", "id"),
        # KPI rollup: which days changed since the last refresh, and counting one day again
        sa.Index("ix_messages_updated", "updated_at"),
        sa.Index("ix_messages_created", "created_at", "id"),
        sa.Index("ix_messages_enrollment", "enrollment_id"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    send_key: str = Field(sa_column=sa.Column(sa.String(255), nullable=False, unique=True))
    enrollment_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("enrollments.id"), nullable=True)
    )
    customer_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("customers.id"), nullable=False))
    journey_id: str | None = Field(default=None, max_length=100)
    journey_version: str | None = Field(default=None, max_length=32)
    step_id: str | None = Field(default=None, max_length=255)
    channel: str = Field(max_length=16)
    provider: str | None = Field(default=None, max_length=32)
    template: str | None = Field(default=None, max_length=255)
    locale: str | None = Field(default=None, max_length=35)
    to_address: str | None = Field(default=None, max_length=320)
    subject: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    body: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    html: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    template_metadata: dict[str, Any] = _json()
    marketing: bool = True
    # Who wins a frequency cap's last slot (docs/frequency-caps.md): higher first; 0 is normal.
    # Journeys fill it from their `priority:`, broadcasts from theirs.
    priority: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    fallback_channel: str | None = Field(default=None, max_length=16)  # tried if this one fails permanently
    # queued → sending → sent → delivered/undelivered; or failed / skipped; `unknown` when a
    # crash cut the provider call off and we cannot tell whether it was accepted
    status: str = Field(max_length=16)  # a MessageStatus
    status_reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    error_code: str | None = Field(default=None, max_length=32)
    provider_message_id: str | None = Field(default=None, max_length=255, index=True)
    cost: Decimal | None = Field(default=None, sa_column=sa.Column(sa.Numeric(12, 5), nullable=True))
    cost_currency: str | None = Field(default=None, max_length=3)
    encoding: str | None = Field(default=None, max_length=8)
    segments: int | None = None
    # Tracked short links in the body (SMS/WhatsApp, docs/links.md): the CTR denominator
    # counts only messages that had something to click.
    tracked_links: int | None = None
    attempts: int = 0  # provider calls that count against the retry budget (engine/retry.py)
    # Times the reconciler queued it again because the provider proved it never got it; such
    # an attempt is not counted in `attempts` (engine/reconcile.py).
    requeues: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    next_attempt_at: datetime | None = _timestamp(nullable=True)
    created_at: datetime = _timestamp()
    sending_at: datetime | None = _timestamp(nullable=True)
    sent_at: datetime | None = _timestamp(nullable=True)
    delivered_at: datetime | None = _timestamp(nullable=True)
    first_opened_at: datetime | None = _timestamp(nullable=True)
    first_clicked_at: datetime | None = _timestamp(nullable=True)
    conversation_id: int | None = Field(default=None, sa_column=sa.Column(BigId, nullable=True))
    updated_at: datetime = _timestamp()


class FrequencyCapSlot(SQLModel, table=True):
    """One of the slots a frequency cap allows a customer on a channel in one local period
    (orchestrator/engine/frequency_caps.py). The slot index is unique per period, and a worker takes
    only indexes below the cap: two workers racing for the last slot cannot both get it."""

    __tablename__ = "frequency_cap_slots"
    __table_args__ = (
        sa.UniqueConstraint("customer_id", "channel", "period", "period_start", "slot", name="uq_cap_slot"),
        # a message takes at most one slot per kind of period, even when a retry crosses midnight
        sa.UniqueConstraint("message_id", "period", name="uq_cap_slot_message"),
        sa.CheckConstraint("slot >= 0", name="ck_cap_slot_index"),
        sa.Index("ix_cap_slots_period_start", "period_start"),  # purging the periods nobody reads any more
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    customer_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("customers.id"), nullable=False))
    channel: str = Field(max_length=16)
    period: str = Field(max_length=8)  # a policies.frequency.Period
    period_start: date = Field(sa_column=sa.Column(sa.Date, nullable=False))  # its first local day
    slot: int
    message_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("messages.id"), nullable=False))
    priority: int
    taken_at: datetime = _timestamp()


class SimulatedTime(SQLModel, table=True):
    """Where simulated time stands (one row), so a restart resumes it instead of jumping back
    to the wall clock while the database already holds rows stamped in the simulated future."""

    __tablename__ = "simulated_time"

    id: int = Field(default=1, primary_key=True)
    now: datetime = _timestamp()
