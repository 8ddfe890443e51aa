"""What happened to whom: customers (one, or a search), with their enrollments and messages;
messages, newest or oldest first, paged by cursor (`pagination.py`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict
from sqlmodel import col, func, select

from orchestrator.api.pagination import after, decode_cursor, encode_cursor, ordered
from orchestrator.api.parameters import Moment, Offset, RowId
from orchestrator.clock import UtcDatetime, utc
from orchestrator.events.schemas import normalize_phone
from orchestrator.journeys.quiet_hours import describe_hold
from orchestrator.storage.models import Customer, Enrollment, Message
from orchestrator.vocabulary import EnrollmentStatus, MessageStatus
from orchestrator.web.dependencies import RuntimeDep, SessionDep
from orchestrator.web.responses import CONFLICT, NOT_FOUND

router = APIRouter(prefix="/v1", tags=["customers and messages"])


class MessagePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    send_key: str
    customer_id: int
    journey_id: str | None
    journey_version: str | None
    step_id: str | None
    channel: str
    provider: str | None
    template: str | None
    locale: str | None
    to_address: str | None
    subject: str | None
    body: str | None
    priority: int = 0  # who wins a frequency cap's last slot (docs/frequency-caps.md)
    status: str
    status_reason: str | None  # a capped send: "frequency_cap: sms per_day 1 (yields to message 7, priority 5)"
    error_code: str | None
    provider_message_id: str | None
    cost: Decimal | None
    cost_currency: str | None
    encoding: str | None
    segments: int | None
    attempts: int
    requeues: int
    created_at: UtcDatetime
    sent_at: UtcDatetime | None
    updated_at: UtcDatetime


class EnrollmentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    journey_id: str
    journey_version: str
    status: str
    cursor: str | None
    waiting_for: str | None
    due_at: UtcDatetime | None
    entered_at: UtcDatetime
    ended_at: UtcDatetime | None
    exit_reason: str | None
    goal_deadline: UtcDatetime | None
    converted_at: UtcDatetime | None
    held_by: str | None = None
    held_until: UtcDatetime | None = None
    hold: str | None = None  # while a send step is held: "held by quiet hours until 08:00 America/Los_Angeles"


class CustomerSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: str
    email: str | None
    phone: str | None
    whatsapp: str | None
    locale: str | None
    timezone: str | None
    timezone_source: str | None  # trait, phone, phone_country; null: unknown, quiet hours in UTC
    traits: dict[str, Any]
    created_at: UtcDatetime
    updated_at: UtcDatetime


class CustomerPublic(CustomerSummary):
    enrollments: list[EnrollmentPublic] = []
    messages: list[MessagePublic] = []


class MessagePage(BaseModel):
    items: list[MessagePublic]
    # Counted on a first page only (paging on by cursor never counts the list again), and only
    # up to TOTAL_COUNTED_UP_TO: null, with `total_exceeds`, when more messages match.
    total: int | None
    total_exceeds: int | None = None
    limit: int
    offset: int
    next_cursor: str | None  # pass as `cursor` for the next page; null on the last page


class CustomerPage(BaseModel):
    items: list[CustomerSummary]
    next_cursor: str | None


Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=1000, description="`next_cursor` of the previous page")]


def customer_search(q: str) -> sa.ColumnElement[bool]:
    """A userId starting with `q`, or an e-mail address or phone number equal to it."""
    matches = [col(Customer.user_id).startswith(q, autoescape=True), col(Customer.email) == q]
    try:
        matches.append(col(Customer.phone) == normalize_phone(q))
    except ValueError:
        pass  # not a phone number: no phone can match
    return sa.or_(*matches)


@router.get("/customers", response_model=CustomerPage)
async def list_customers(
    session: SessionDep,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=255, description=("userId prefix, or an exact e-mail address or phone number")),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> CustomerPage:
    """Customers, newest first. Served by the primary key (whole list), the userId prefix
    index and the e-mail and phone indexes (search)."""
    query = select(Customer)
    if q is not None:  # NUL in a URL never gets here (url_checks.py)
        query = query.where(customer_search(q))
    if cursor is not None:
        query = query.where(
            after((col(Customer.id),), decode_cursor("customers", cursor, timestamp_first=False), "desc")
        )
    rows = (await session.exec(query.order_by(col(Customer.id).desc()).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return CustomerPage(
        items=[CustomerSummary.model_validate(c) for c in rows],
        next_cursor=encode_cursor("customers", [rows[-1].id]) if more else None,
    )


@router.get("/customers/{user_id}", response_model=CustomerPublic, responses=NOT_FOUND)
async def get_customer(user_id: str, session: SessionDep) -> CustomerPublic:
    customer = (await session.exec(select(Customer).where(Customer.user_id == user_id))).first()
    if customer is None:
        raise HTTPException(404, f"no customer with userId '{user_id}'")
    enrollments = (
        await session.exec(select(Enrollment).where(Enrollment.customer_id == customer.id).order_by(col(Enrollment.id)))
    ).all()
    messages = (
        await session.exec(select(Message).where(Message.customer_id == customer.id).order_by(col(Message.id)))
    ).all()
    public = CustomerPublic.model_validate(customer)
    public.enrollments = [_enrollment_public(e, customer.timezone) for e in enrollments]
    public.messages = [MessagePublic.model_validate(m) for m in messages]
    return public


def _enrollment_public(enrollment: Enrollment, zone: str | None) -> EnrollmentPublic:
    public = EnrollmentPublic.model_validate(enrollment)
    still_held = (
        enrollment.status == EnrollmentStatus.active
        and enrollment.held_until is not None
        and enrollment.due_at is not None
        and utc(enrollment.due_at) == utc(enrollment.held_until)
    )
    if still_held:
        public.hold = describe_hold(utc(enrollment.held_until), zone)
    return public


MESSAGE_ORDER = (col(Message.created_at), col(Message.id))
# An exact count past this reads every matching row: 160 ms for a first page over a million
# messages, seconds over ten million. Nobody pages through more; the console says "more than".
TOTAL_COUNTED_UP_TO = 10_000


@router.get("/messages", response_model=MessagePage)
async def list_messages(
    session: SessionDep,
    journey: str | None = None,
    channel: str | None = None,
    status: str | None = None,
    template: str | None = None,
    customer: Annotated[str | None, Query(description="userId")] = None,
    since: Annotated[
        Moment | None, Query(alias="from", description="Created at or after (ISO-8601, UTC if no offset)")
    ] = None,
    until: Annotated[Moment | None, Query(alias="to", description="Created before")] = None,
    sort: Annotated[
        Literal["created_at", "-created_at"], Query(description="`-created_at`: newest first")
    ] = "created_at",
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
) -> MessagePage:
    """Messages in creation order (oldest first unless `sort=-created_at`), paged by `cursor`.

    Served by an index ending in (created_at, id): `ix_messages_created` for the whole list,
    `ix_messages_journey`, `ix_messages_customer`, `ix_messages_status_created` or
    `ix_messages_template` when filtered by journey, customer, status or template. `total` is
    counted on a first page only, up to 10,000: past that it is null and `total_exceeds` is 10000."""
    direction = "desc" if sort.startswith("-") else "asc"
    query = select(Message)
    if journey:
        query = query.where(Message.journey_id == journey)
    if channel:
        query = query.where(Message.channel == channel)
    if status:
        query = query.where(Message.status == status)
    if template:
        query = query.where(Message.template == template)
    if customer:
        query = query.join(Customer, col(Customer.id) == col(Message.customer_id)).where(Customer.user_id == customer)
    if since:
        query = query.where(col(Message.created_at) >= since)
    if until:
        query = query.where(col(Message.created_at) < until)
    kind = f"messages{sort}"
    total = total_exceeds = None
    if cursor is None:
        # In the page's order, so the count reads the page's index: unordered, PostgreSQL may
        # take a sequential scan that starts mid-table (synchronized scans) and walks far
        # before it finds enough rows of a rare filter.
        matching = (
            query.with_only_columns(col(Message.id))
            .order_by(*ordered(MESSAGE_ORDER, direction))
            .limit(TOTAL_COUNTED_UP_TO + 1)
            .subquery()
        )
        total = (await session.exec(select(func.count()).select_from(matching))).one()
        if total > TOTAL_COUNTED_UP_TO:
            total, total_exceeds = None, TOTAL_COUNTED_UP_TO
    else:
        query = query.where(after(MESSAGE_ORDER, decode_cursor(kind, cursor, timestamp_first=True), direction))
    rows = (
        await session.exec(query.order_by(*ordered(MESSAGE_ORDER, direction)).limit(limit + 1).offset(offset))
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(kind, [rows[-1].created_at, rows[-1].id]) if more else None
    return MessagePage(
        items=[MessagePublic.model_validate(m) for m in rows],
        total=total,
        total_exceeds=total_exceeds,
        limit=limit,
        offset=offset,
        next_cursor=next_cursor,
    )


RETRYABLE = (MessageStatus.unknown, MessageStatus.failed)


@router.post("/messages/{message_id}/retry", response_model=MessagePublic, responses={**NOT_FOUND, **CONFLICT})
async def retry_message(message_id: RowId, session: SessionDep, runtime: RuntimeDep) -> MessagePublic:
    """Send an `unknown` or `failed` message again: a person's decision, never automatic."""
    async with session.begin():
        message = (await session.exec(select(Message).where(Message.id == message_id).with_for_update())).first()
        if message is None:
            raise HTTPException(404, f"no message {message_id}")
        if message.status not in RETRYABLE:
            raise HTTPException(
                409, f"message {message_id} is {message.status}; only {' or '.join(RETRYABLE)} messages can be retried"
            )
        now = runtime.clock.now()
        message.status, message.status_reason, message.error_code = (
            MessageStatus.queued,
            f"retried by hand after {message.status}",
            None,
        )
        message.next_attempt_at, message.updated_at, message.attempts, message.requeues = now, now, 0, 0
    return MessagePublic.model_validate(message)
