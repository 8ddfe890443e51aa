"""One customer's history across channels, in time order: what support and ops read first.

The entries come from many tables (events, messages, provider statuses, inbound messages,
consents, enrollments, conversions). Each kind is one query ordered by its own time column
and cut at `offset + limit + 1` rows: whatever the merged page holds is among those, so a
page costs a dozen small indexed queries, however long the history.

Entries at the same instant (common with a simulated clock, and within one transaction)
are ordered by kind, in the order one causes the other: the event, then the enrollment it
starts, the message, its statuses, the conversion, the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.clock import utc
from orchestrator.journeys.quiet_hours import describe_hold
from orchestrator.storage.feedback_models import Consent, Conversion, InboundMessage, MessageStatusEvent
from orchestrator.storage.models import Customer, Enrollment, Event, Message
from orchestrator.vocabulary import MessageStatus

KINDS = (
    "track",
    "identify",
    "inbound",
    "consent",
    "enrollment_entered",
    "enrollment_held",
    "message_created",
    "message_skipped",
    "message_sent",
    "message_failed",
    "message_status",
    "enrollment_converted",
    "conversion",
    "enrollment_ended",
)
SEGMENT_CALLS = ("identify", "page", "screen", "group", "alias")  # stored as events beside track
_RANK = {kind: rank for rank, kind in enumerate(KINDS)}
_RANK.update({call: _RANK["track"] for call in SEGMENT_CALLS})  # all are "the customer's own event"
KEYWORD_NAMES = {"opt_out": "opt-out keyword", "opt_in": "opt-in keyword", "help": "help keyword"}
HANDLERS = {
    "auto_reply": "answered automatically",
    "journey": "a journey's reply",
    "agent": "answered by an agent",
    "nps_no_score": "an answer to an NPS survey with no score 0-10 in it: no score recorded",
}


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    summary: str
    source: str  # the table the entry comes from
    source_id: int
    channel: str | None = None
    journey_id: str | None = None
    step_id: str | None = None
    message_id: int | None = None
    enrollment_id: int | None = None

    @property
    def order_key(self) -> tuple:
        return (self.at, _RANK[self.kind], self.source_id)


@dataclass(frozen=True)
class TimelinePage:
    entries: list[TimelineEntry]
    has_more: bool


def brief(values: dict[str, Any], limit: int = 80) -> str:
    text = ", ".join(f"{key}: {value}" for key, value in values.items() if value is not None)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _origin(message: Message) -> str:
    if message.journey_id:
        return f"{message.journey_id}/{message.step_id}"
    return message.status_reason or "a direct message"


def _event(event: Event) -> TimelineEntry:
    properties = brief(event.properties)
    if event.type == "identify":
        summary = f"identified: {properties}" if properties else "identified"
        if event.withheld_traits:  # sent from a page without identity verification (events/site_identity.py)
            summary += f" (not applied, no identity verification: {', '.join(event.withheld_traits)})"
    elif event.type in ("page", "screen"):
        summary = f"viewed {event.type} '{event.name or ''}'" + (f" {{{properties}}}" if properties else "")
    elif event.type == "group":
        summary = f"in group '{event.name}'" + (f" {{{properties}}}" if properties else "")
    elif event.type == "alias":
        summary = f"also known as '{event.properties.get('previousId')}'"
    else:
        summary = f"tracked '{event.name}'" + (f" {{{properties}}}" if properties else "")
        if event.unverified:
            summary += " (no journey reacted, no identity verification)"
    return TimelineEntry(utc(event.received_at), event.type, summary, "events", event.id)


def _inbound(inbound: InboundMessage) -> TimelineEntry:
    handling = KEYWORD_NAMES.get(inbound.keyword or "") or HANDLERS.get(
        inbound.handled_by or "", "waiting for an agent"
    )
    body = inbound.body if len(inbound.body) <= 80 else inbound.body[:79] + "…"
    return TimelineEntry(
        utc(inbound.received_at),
        "inbound",
        f"replied by {inbound.channel}: '{body}' ({handling})",
        "inbound_messages",
        inbound.id,
        channel=inbound.channel,
    )


def _consent(consent: Consent) -> TimelineEntry:
    status = consent.status.replace("_", " ")
    return TimelineEntry(
        utc(consent.recorded_at),
        "consent",
        f"{consent.channel} {status} (source: {consent.source})",
        "consents",
        consent.id,
        channel=consent.channel,
    )


def _enrollment_entry(kind: str, at: datetime, enrollment: Enrollment, summary: str) -> TimelineEntry:
    return TimelineEntry(
        utc(at),
        kind,
        summary,
        "enrollments",
        enrollment.id,
        journey_id=enrollment.journey_id,
        enrollment_id=enrollment.id,
    )


def _entered(e: Enrollment) -> TimelineEntry:
    holdout = " in the holdout group (never messaged)" if e.holdout else ""
    return _enrollment_entry(
        "enrollment_entered", e.entered_at, e, f"entered journey {e.journey_id} (version {e.journey_version}){holdout}"
    )


def _held(row: tuple[Enrollment, str | None]) -> TimelineEntry:
    e, zone = row
    return _enrollment_entry(
        "enrollment_held", e.held_at, e, f"journey {e.journey_id} {describe_hold(utc(e.held_until), zone)}"
    )


def _converted(e: Enrollment) -> TimelineEntry:
    return _enrollment_entry("enrollment_converted", e.converted_at, e, f"reached the goal of journey {e.journey_id}")


def _ended(e: Enrollment) -> TimelineEntry:
    reason = f": {e.exit_reason}" if e.exit_reason else ""
    return _enrollment_entry("enrollment_ended", e.ended_at, e, f"{e.status} journey {e.journey_id}{reason}")


def _message_entry(
    kind: str, at: datetime, message: Message, summary: str, source: str = "messages", source_id: int | None = None
) -> TimelineEntry:
    return TimelineEntry(
        utc(at),
        kind,
        summary,
        source,
        source_id or message.id,
        channel=message.channel,
        journey_id=message.journey_id,
        step_id=message.step_id,
        message_id=message.id,
    )


def _created(m: Message) -> TimelineEntry:
    to = f" to {m.to_address}" if m.to_address else ""
    return _message_entry(
        "message_created", m.created_at, m, f"queued {m.channel} for {_origin(m)}{to} (now {m.status})"
    )


def _skipped(m: Message) -> TimelineEntry:
    return _message_entry(
        "message_skipped",
        m.created_at,
        m,
        f"skipped {m.channel} for {_origin(m)}: {m.status_reason or 'no reason given'}",
    )


def _sent(m: Message) -> TimelineEntry:
    return _message_entry("message_sent", m.sent_at, m, f"sent {m.channel} for {_origin(m)} via {m.provider}")


def _failed(m: Message) -> TimelineEntry:
    code = f" (error {m.error_code})" if m.error_code else ""
    return _message_entry(
        "message_failed",
        m.updated_at,
        m,
        f"failed {m.channel} for {_origin(m)}: {m.status_reason or 'no reason given'}{code}",
    )


def _status(row: tuple[MessageStatusEvent, Message]) -> TimelineEntry:
    status, message = row
    code = f", error {status.error_code}" if status.error_code else ""
    return _message_entry(
        "message_status",
        status.occurred_at,
        message,
        f"{message.channel} for {_origin(message)}: {status.status} (reported by {status.source}{code})",
        source="message_status_events",
        source_id=status.id,
    )


def _conversion(c: Conversion) -> TimelineEntry:
    revenue = f" worth {c.revenue} {c.currency or ''}".rstrip() if c.revenue is not None else ""
    return TimelineEntry(
        utc(c.converted_at),
        "conversion",
        f"converted{revenue}, credited to {c.journey_id}/{c.step_id} by {c.channel}",
        "conversions",
        c.id,
        channel=c.channel,
        journey_id=c.journey_id,
        step_id=c.step_id,
        message_id=c.message_id,
        enrollment_id=c.enrollment_id,
    )


@dataclass(frozen=True)
class _Source:
    statement: Any  # a SELECT of this kind's rows for one customer
    time: Any  # the column the kind is ordered by
    row_id: Any
    entry: Callable[[Any], TimelineEntry]


def _sources(customer_id: int) -> list[_Source]:
    messages = select(Message).where(Message.customer_id == customer_id)
    enrollments = select(Enrollment).where(Enrollment.customer_id == customer_id)
    statuses = (
        select(MessageStatusEvent, Message)
        .join(Message, col(Message.id) == col(MessageStatusEvent.message_id))
        .where(Message.customer_id == customer_id)
    )
    return [
        # Replies are also stored as `inbound` events; the inbound message tells more, so it alone is shown.
        _Source(
            select(Event).where(Event.customer_id == customer_id, Event.type != "inbound"),
            Event.received_at,
            Event.id,
            _event,
        ),
        _Source(
            select(InboundMessage).where(InboundMessage.customer_id == customer_id),
            InboundMessage.received_at,
            InboundMessage.id,
            _inbound,
        ),
        _Source(select(Consent).where(Consent.customer_id == customer_id), Consent.recorded_at, Consent.id, _consent),
        _Source(enrollments, Enrollment.entered_at, Enrollment.id, _entered),
        _Source(
            select(Enrollment, Customer.timezone)
            .join(Customer, col(Customer.id) == col(Enrollment.customer_id))
            .where(Enrollment.customer_id == customer_id, col(Enrollment.held_at).is_not(None)),
            Enrollment.held_at,
            Enrollment.id,
            _held,
        ),
        _Source(
            enrollments.where(col(Enrollment.converted_at).is_not(None)),
            Enrollment.converted_at,
            Enrollment.id,
            _converted,
        ),
        _Source(enrollments.where(col(Enrollment.ended_at).is_not(None)), Enrollment.ended_at, Enrollment.id, _ended),
        _Source(messages.where(Message.status != MessageStatus.skipped), Message.created_at, Message.id, _created),
        _Source(messages.where(Message.status == MessageStatus.skipped), Message.created_at, Message.id, _skipped),
        _Source(messages.where(col(Message.sent_at).is_not(None)), Message.sent_at, Message.id, _sent),
        # Failed before any provider took it; failures reported later are in the status history.
        _Source(
            messages.where(Message.status == MessageStatus.failed, col(Message.sent_at).is_(None)),
            Message.updated_at,
            Message.id,
            _failed,
        ),
        _Source(statuses, MessageStatusEvent.occurred_at, MessageStatusEvent.id, _status),
        _Source(
            select(Conversion).where(Conversion.customer_id == customer_id),
            Conversion.converted_at,
            Conversion.id,
            _conversion,
        ),
    ]


async def _fetch(session: AsyncSession, source: _Source, count: int, newest_first: bool) -> list[TimelineEntry]:
    order = (
        (col(source.time).desc(), col(source.row_id).desc()) if newest_first else (col(source.time), col(source.row_id))
    )
    rows = (await session.exec(source.statement.order_by(*order).limit(count))).all()
    return [source.entry(row) for row in rows]


async def customer_timeline(
    session: AsyncSession, customer_id: int, *, limit: int = 50, offset: int = 0, newest_first: bool = False
) -> TimelinePage:
    wanted = offset + limit + 1  # one more than the page tells whether another page follows
    entries = [
        entry for source in _sources(customer_id) for entry in await _fetch(session, source, wanted, newest_first)
    ]
    merged = sorted(entries, key=lambda entry: entry.order_key, reverse=newest_first)[:wanted]
    page = merged[offset : offset + limit]
    return TimelinePage(entries=page, has_more=len(merged) > offset + limit)
