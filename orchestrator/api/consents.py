"""The consent ledger through the API: current state per channel, history, new records."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlmodel import col, select

from orchestrator.clock import UtcDatetime
from orchestrator.customers.consent import marketing_refusal, record_consent
from orchestrator.events.schemas import JsonObject, Text
from orchestrator.storage.feedback_models import Consent
from orchestrator.storage.models import Customer
from orchestrator.vocabulary import CHANNELS, Channel
from orchestrator.web.dependencies import RuntimeDep, SessionDep
from orchestrator.web.responses import NOT_FOUND

router = APIRouter(prefix="/v1/customers", tags=["consent"])


class ConsentRecord(BaseModel):
    channel: str
    status: str
    source: str
    evidence: dict[str, Any]
    recorded_at: UtcDatetime


class ChannelConsent(BaseModel):
    status: str | None  # opted_in | opted_out | None (never asked)
    marketing_allowed: bool
    since: UtcDatetime | None
    source: str | None


class Consents(BaseModel):
    user_id: str
    channels: dict[str, ChannelConsent]
    history: list[ConsentRecord]


class NewConsent(BaseModel):
    channel: Channel
    status: Literal["opted_in", "opted_out"]
    source: Text = Field(min_length=1, max_length=32, examples=["web_form", "api", "checkout_checkbox"])
    evidence: JsonObject = Field(default_factory=dict, examples=[{"form": "checkout", "ip": "203.0.113.7"}])


async def _customer(session, user_id: str) -> Customer:
    customer = (await session.exec(select(Customer).where(Customer.user_id == user_id))).first()
    if customer is None:
        raise HTTPException(404, f"no customer with userId '{user_id}'")
    return customer


async def _consents(session, customer: Customer) -> Consents:
    rows = (
        await session.exec(select(Consent).where(Consent.customer_id == customer.id).order_by(col(Consent.id)))
    ).all()
    latest = {row.channel: row for row in rows}
    channels = {
        channel: ChannelConsent(
            status=latest[channel].status if channel in latest else None,
            marketing_allowed=marketing_refusal(channel, latest[channel].status if channel in latest else None) is None,
            since=latest[channel].recorded_at if channel in latest else None,
            source=latest[channel].source if channel in latest else None,
        )
        for channel in CHANNELS
    }
    history = [
        ConsentRecord(
            channel=r.channel, status=r.status, source=r.source, evidence=r.evidence, recorded_at=r.recorded_at
        )
        for r in rows
    ]
    return Consents(user_id=customer.user_id, channels=channels, history=history)


@router.get("/{user_id}/consents", response_model=Consents, responses=NOT_FOUND)
async def get_consents(user_id: str, session: SessionDep) -> Consents:
    return await _consents(session, await _customer(session, user_id))


@router.post("/{user_id}/consents", response_model=Consents, status_code=201, responses=NOT_FOUND)
async def add_consent(user_id: str, body: NewConsent, session: SessionDep, runtime: RuntimeDep) -> Consents:
    """Append a record (e.g. a web form opt-in); the ledger is never edited."""
    async with session.begin():
        customer = await _customer(session, user_id)
        await record_consent(
            session, customer.id, body.channel, body.status, body.source, runtime.clock.now(), body.evidence
        )
    return await _consents(session, customer)
