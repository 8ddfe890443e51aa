"""What happened to whom: customers with their enrollments and messages, and messages."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict
from sqlmodel import col, func, select

from orchestrator.clock import UtcDatetime, utc
from orchestrator.journeys.quiet_hours import describe_hold
from orchestrator.storage.models import Customer, Enrollment, Message
from orchestrator.vocabulary import EnrollmentStatus, MessageStatus
from orchestrator.web.dependencies import RuntimeDep, SessionDep

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
    status: str
    status_reason: str | None
    error_code: str | None
    provider_message_id: str | None
    cost: Decimal | None
    cost_currency: str | None
    encoding: str | None
    segments: int | None
    attempts: int
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


class CustomerPublic(BaseModel):
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
    enrollments: list[EnrollmentPublic] = []
    messages: list[MessagePublic] = []


class MessagePage(BaseModel):
    items: list[MessagePublic]
    total: int
    limit: int
    offset: int


@router.get("/customers/{user_id}", response_model=CustomerPublic)
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
    still_held = (enrollment.status == EnrollmentStatus.active and enrollment.held_until is not None
                  and enrollment.due_at is not None and utc(enrollment.due_at) == utc(enrollment.held_until))
    if still_held:
        public.hold = describe_hold(utc(enrollment.held_until), zone)
    return public


@router.get("/messages", response_model=MessagePage)
async def list_messages(
    session: SessionDep,
    journey: str | None = None,
    channel: str | None = None,
    status: str | None = None,
    customer: Annotated[str | None, Query(description="userId")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> MessagePage:
    query = select(Message)
    if journey:
        query = query.where(Message.journey_id == journey)
    if channel:
        query = query.where(Message.channel == channel)
    if status:
        query = query.where(Message.status == status)
    if customer:
        query = query.join(Customer, col(Customer.id) == col(Message.customer_id)).where(Customer.user_id == customer)
    total = (await session.exec(select(func.count()).select_from(query.subquery()))).one()
    rows = (await session.exec(query.order_by(col(Message.id)).limit(limit).offset(offset))).all()
    return MessagePage(items=[MessagePublic.model_validate(m) for m in rows], total=total, limit=limit, offset=offset)


RETRYABLE = (MessageStatus.unknown, MessageStatus.failed)


@router.post("/messages/{message_id}/retry", response_model=MessagePublic)
async def retry_message(message_id: int, session: SessionDep, runtime: RuntimeDep) -> MessagePublic:
    """Send an `unknown` or `failed` message again: a person's decision, never automatic."""
    async with session.begin():
        message = (await session.exec(select(Message).where(Message.id == message_id).with_for_update())).first()
        if message is None:
            raise HTTPException(404, f"no message {message_id}")
        if message.status not in RETRYABLE:
            raise HTTPException(409, f"message {message_id} is {message.status}; only {' or '.join(RETRYABLE)} messages can be retried")
        now = runtime.clock.now()
        message.status, message.status_reason, message.error_code = MessageStatus.queued, f"retried by hand after {message.status}", None
        message.next_attempt_at, message.updated_at, message.attempts = now, now, 0
    return MessagePublic.model_validate(message)
