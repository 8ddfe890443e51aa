"""Every row we hold about one customer, table by table: what an export shows and an erase
goes through. One list (`customer_rows`), so the two cannot disagree about what exists.

The tables that name a customer: `customers`, `events` (their own, and the anonymous ones
of ids linked to them), `identity_links`, `consents`, `enrollments`, `messages` and their
`message_status_events` (deliveries, opens, clicks), `conversations`, `inbound_messages`,
`nps_responses`, `conversions`, `customer_orders`, and `suppressions` by address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.storage.feedback_models import (
    Consent,
    Conversation,
    Conversion,
    InboundMessage,
    MessageStatusEvent,
    NpsResponse,
    Suppression,
)
from orchestrator.storage.kpi_models import CustomerOrder
from orchestrator.storage.models import Customer, Enrollment, Event, IdentityLink, Message


@dataclass
class CustomerRows:
    customer: Customer
    events: list[Event]
    anonymous_events: list[Event]  # before they were identified, through identity_links
    identity_links: list[IdentityLink]
    consents: list[Consent]
    enrollments: list[Enrollment]
    messages: list[Message]
    message_statuses: list[MessageStatusEvent]
    conversations: list[Conversation]
    inbound_messages: list[InboundMessage]
    nps_responses: list[NpsResponse]
    conversions: list[Conversion]
    orders: list[CustomerOrder]
    suppressions: list[Suppression]


async def find_customer(session: AsyncSession, user_id: str, *, lock: bool = False) -> Customer | None:
    query = select(Customer).where(Customer.user_id == user_id)
    if lock:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def customer_rows(session: AsyncSession, customer: Customer) -> CustomerRows:
    async def all_of(model, *conditions, order=None) -> list[Any]:
        query = select(model).where(*conditions).order_by(order if order is not None else col(model.id))
        return list((await session.exec(query)).all())

    cid = customer.id
    links = await all_of(IdentityLink, IdentityLink.customer_id == cid, order=col(IdentityLink.anonymous_id))
    anonymous_ids = [link.anonymous_id for link in links]
    messages = await all_of(Message, Message.customer_id == cid)
    addresses = {a for a in (customer.email, customer.phone, customer.whatsapp) if a}
    return CustomerRows(
        customer=customer,
        events=await all_of(Event, Event.customer_id == cid),
        anonymous_events=await all_of(
            Event, col(Event.customer_id).is_(None), col(Event.anonymous_id).in_(anonymous_ids)
        )
        if anonymous_ids
        else [],
        identity_links=links,
        consents=await all_of(Consent, Consent.customer_id == cid),
        enrollments=await all_of(Enrollment, Enrollment.customer_id == cid),
        messages=messages,
        message_statuses=await all_of(
            MessageStatusEvent, col(MessageStatusEvent.message_id).in_([m.id for m in messages])
        )
        if messages
        else [],
        conversations=await all_of(Conversation, Conversation.customer_id == cid),
        inbound_messages=await all_of(InboundMessage, InboundMessage.customer_id == cid),
        nps_responses=await all_of(NpsResponse, NpsResponse.customer_id == cid),
        conversions=await all_of(Conversion, Conversion.customer_id == cid),
        orders=await all_of(CustomerOrder, CustomerOrder.customer_id == cid, order=col(CustomerOrder.order_key)),
        suppressions=await all_of(Suppression, col(Suppression.address).in_(addresses)) if addresses else [],
    )


def _plain(row: SQLModel, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    return row.model_dump(mode="json", exclude=set(leave_out))


def export_document(rows: CustomerRows, exported_at) -> dict[str, Any]:
    """Everything about the customer as JSON (GET /v1/customers/{userId}/export)."""
    statuses: dict[int, list[dict]] = {}
    for status in rows.message_statuses:
        statuses.setdefault(status.message_id, []).append(_plain(status, ("message_id",)))
    clicks = [
        {"message_id": s.message_id, "at": _plain(s)["occurred_at"], **s.detail}
        for s in rows.message_statuses
        if s.status == "click"
    ]
    return {
        "exported_at": exported_at.isoformat(),
        "customer": _plain(rows.customer),
        "consents": [_plain(c) for c in rows.consents],
        "identity_links": [_plain(link) for link in rows.identity_links],
        "events": [_plain(e) for e in rows.events],
        "anonymous_events": [_plain(e) for e in rows.anonymous_events],
        "enrollments": [_plain(e) for e in rows.enrollments],
        "messages": [{**_plain(m), "statuses": statuses.get(m.id, [])} for m in rows.messages],
        "clicks": clicks,
        "conversations": [_plain(c) for c in rows.conversations],
        "inbound_messages": [_plain(i) for i in rows.inbound_messages],
        "nps_responses": [_plain(n) for n in rows.nps_responses],
        "conversions": [_plain(c) for c in rows.conversions],
        "orders": [_plain(o) for o in rows.orders],
        "suppressions": [_plain(s) for s in rows.suppressions],
    }
