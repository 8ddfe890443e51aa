"""Erase a customer on request: personal data gone, aggregates kept, addresses tombstoned.

What goes: the profile (addresses, locale, time zone, traits), the userId (replaced by
`erased:<row id>`), event properties and context (orders keep their id and amounts),
identity links, enrollment contexts, message addresses and texts, status details, inbound
texts and addresses, plain-text suppressions of their addresses, their visits' landing
pages, referrers and UTM parameters. What stays: the rows
themselves with their statuses, channels, costs, times, journey and step, so every KPI,
conversion and revenue figure still adds up. Active enrollments end (`exited`, "customer
erased"); messages not sent yet are skipped; the next segment round takes them out of
every segment (an erased customer matches none).

The addresses become tombstones (`tombstones.py`): keyed hashes that every send decision
checks, so an import or identify that brings an address back is still never messaged.
`customers.erased_at` carries a CHECK: an erased customer cannot hold an address again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.customers.records import customer_rows
from orchestrator.customers.tombstones import address_hash
from orchestrator.delivery.conversions import REVENUE_PROPERTIES
from orchestrator.segments.membership import mark_profiles_changed
from orchestrator.storage.kpi_models import Visit
from orchestrator.storage.models import Customer, ErasedAddress
from orchestrator.storage.queries import insert_many_ignoring_conflict
from orchestrator.vocabulary import Channel, EnrollmentStatus, MessageStatus

KEPT_EVENT_PROPERTIES = frozenset({*REVENUE_PROPERTIES, "order_id", "currency"})  # order revenue stays counted
ERASED = "erased"
NOT_SENT_YET = (MessageStatus.queued,)
VISITED_COLUMNS = (
    "landing_url",
    "landing_path",
    "referrer",
    *(f"utm_{k}" for k in ("source", "medium", "campaign", "content", "term")),
)


@dataclass(frozen=True)
class Erasure:
    user_id: str  # the one asked for; the row now has `erased:<id>`
    erased_at: datetime
    tombstones: int  # addresses hashed
    rows_changed: int


async def erase_customer(session: AsyncSession, customer: Customer, erasure_key: str | None, now: datetime) -> Erasure:
    """Erase `customer` (locked by the caller) within the caller's transaction."""
    rows = await customer_rows(session, customer)
    user_id = customer.user_id
    addresses = {(Channel.email.value, customer.email)} if customer.email else set()
    addresses |= {(Channel.sms.value, n) for n in (customer.phone, customer.whatsapp) if n}
    hashes = sorted({address_hash(erasure_key, channel, address) for channel, address in addresses})
    await insert_many_ignoring_conflict(
        session, ErasedAddress, [dict(address_hash=h, erased_at=now) for h in hashes], ["address_hash"]
    )
    changed = 0
    for event in (*rows.events, *rows.anonymous_events):
        event.properties = {k: v for k, v in event.properties.items() if k in KEPT_EVENT_PROPERTIES}
        event.context = None
        event.anonymous_id = None
        changed += 1
    for link in rows.identity_links:
        await session.delete(link)
        changed += 1
    for suppression in rows.suppressions:  # the tombstone keeps the address suppressed, hashed
        await session.delete(suppression)
        changed += 1
    for consent in rows.consents:  # the decision and its time stay; what proves it named the person
        consent.evidence = {ERASED: True}
        changed += 1
    for enrollment in rows.enrollments:
        enrollment.context = {}
        if enrollment.status == EnrollmentStatus.active:
            enrollment.status, enrollment.ended_at, enrollment.exit_reason = (
                EnrollmentStatus.exited,
                now,
                "customer erased",
            )
            enrollment.due_at = enrollment.waiting_for = None
        changed += 1
    for message in rows.messages:
        message.to_address = message.subject = message.body = message.html = None
        if message.status in NOT_SENT_YET:
            message.status, message.status_reason, message.next_attempt_at = (
                MessageStatus.skipped,
                "customer erased",
                None,
            )
        message.updated_at = now
        changed += 1
    for status in rows.message_statuses:
        status.detail = {}
        changed += 1
    for inbound in rows.inbound_messages:
        inbound.body = ""
        inbound.from_address = inbound.to_address = ERASED
        changed += 1
    # Visits keep their counts and times; what the person browsed goes (website KPIs).
    scrubbed = await session.exec(
        sa.update(Visit.__table__)
        .where(Visit.__table__.c.customer_id == customer.id)
        .values({column: None for column in VISITED_COLUMNS})
    )
    changed += scrubbed.rowcount
    customer.user_id = f"erased:{customer.id}"
    customer.email = customer.phone = customer.whatsapp = customer.locale = customer.timezone = None
    customer.timezone_source = None
    customer.traits = {}
    customer.whatsapp_window_until = None
    customer.erased_at = customer.updated_at = now
    await session.flush()
    await mark_profiles_changed(session, [customer.id], now)  # the next segment round lets them go
    return Erasure(user_id=user_id, erased_at=now, tombstones=len(hashes), rows_changed=changed + 1)
