"""Consent: an append-only ledger per customer and channel; the current state is derived.

SMS and WhatsApp marketing need an opt-in; e-mail is opt-out. Transactional messages need
no consent, but nothing goes to a suppressed address (hard bounce, spam report). Identify
traits (`sms_opt_in`, `whatsapp_opt_in`, `email_opt_out`) are one more source of records.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.customers.tombstones import erased_addresses
from orchestrator.storage.feedback_models import Consent, Suppression
from orchestrator.storage.queries import any_of
from orchestrator.vocabulary import CHANNELS, PHONE_CHANNELS, Channel

OPTED_IN, OPTED_OUT = "opted_in", "opted_out"
# Marketing on a phone needs an opt-in; e-mail marketing is allowed until an opt-out.
OPT_IN_CHANNELS = PHONE_CHANNELS
TRAIT_CONSENTS = {
    "sms_opt_in": (Channel.sms, True),
    "whatsapp_opt_in": (Channel.whatsapp, True),
    "email_opt_out": (Channel.email, False),
}
SOURCES = (
    "sms_keyword",
    "whatsapp_keyword",
    "web_form",
    "api",
    "unsubscribe_link",
    "identify",
    "spam_report",
    "hard_bounce",
    "provider_opt_out",
    "import",
)


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "1", "y", "on"}
    return bool(value)


def marketing_refusal(channel: str, state: str | None) -> str | None:
    """None when marketing may go out on `channel` given its current consent state."""
    if state == OPTED_OUT:
        return f"{channel} opted out"
    if channel in OPT_IN_CHANNELS and state != OPTED_IN:
        return f"no {channel} opt-in"
    return None


@dataclass
class SendPermissions:
    """Everything a send decision needs to know about one customer, loaded in bulk."""

    consents: dict[str, str] = field(default_factory=dict)  # channel → opted_in | opted_out
    suppressed: set[tuple[str, str]] = field(default_factory=set)  # (channel, address)
    erased: set[tuple[str, str]] = field(default_factory=set)  # (channel, address) of an erased customer
    whatsapp_window_until: datetime | None = None

    @classmethod
    def from_traits(cls, traits: dict[str, Any]) -> SendPermissions:
        """For in-memory simulation: consent read straight from traits."""
        consents = {}
        for trait, (channel, opt_in_means) in TRAIT_CONSENTS.items():
            if trait in traits:
                consents[channel] = OPTED_IN if truthy(traits[trait]) == opt_in_means else OPTED_OUT
        return cls(consents=consents)

    def marketing_allowed(self, channel: str) -> bool:
        if channel not in CHANNELS:  # `consented('fax')` is a typo, not a permission
            return False
        return marketing_refusal(channel, self.consents.get(channel)) is None


def current_status_sql(customer_id: sa.ColumnElement, channel: str) -> sa.ScalarSelect:
    """`current_consents` as SQL, for queries over many customers (segments): the status of
    the customer's latest record on the channel, NULL when there is none."""
    ledger = Consent.__table__.c
    return (
        sa.select(ledger.status)
        .where(ledger.customer_id == customer_id, ledger.channel == channel)
        .order_by(ledger.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def marketing_allowed_sql(customer_id: sa.ColumnElement, channel: str) -> sa.ColumnElement[bool]:
    """`marketing_refusal(...) is None` as SQL: opted in on a phone channel, not opted out on e-mail."""
    status = sa.func.coalesce(current_status_sql(customer_id, channel), "")  # never NULL, so NOT works
    return status == OPTED_IN if channel in OPT_IN_CHANNELS else status != OPTED_OUT


async def current_consents(session: AsyncSession, customer_ids: set[int]) -> dict[int, dict[str, str]]:
    rows = (
        await session.exec(
            select(Consent.customer_id, Consent.channel, Consent.status)
            .where(any_of(session, col(Consent.customer_id), customer_ids))
            .order_by(col(Consent.id))
        )
    ).all()
    states: dict[int, dict[str, str]] = defaultdict(dict)
    for row in rows:  # later records override earlier ones
        states[row.customer_id][row.channel] = row.status
    return states


async def suppressed_addresses(session: AsyncSession, addresses: set[str]) -> set[tuple[str, str]]:
    if not addresses:
        return set()
    rows = (
        await session.exec(
            select(Suppression.channel, Suppression.address).where(any_of(session, col(Suppression.address), addresses))
        )
    ).all()
    return {(r.channel, r.address) for r in rows}


async def record_consent(
    session: AsyncSession,
    customer_id: int,
    channel: str,
    status: str,
    source: str,
    now: datetime,
    evidence: dict[str, Any] | None = None,
    only_if_changed: bool = False,
) -> Consent | None:
    if status not in (OPTED_IN, OPTED_OUT):
        raise ValueError(f"consent status must be {OPTED_IN} or {OPTED_OUT}")
    if only_if_changed:
        current = (await current_consents(session, {customer_id})).get(customer_id, {}).get(channel)
        if current == status:
            return None
    record = Consent(
        customer_id=customer_id, channel=channel, status=status, source=source, evidence=evidence or {}, recorded_at=now
    )
    session.add(record)
    await session.flush()
    return record


def record_trait_consents(
    session: AsyncSession, customer_id: int, traits: dict[str, Any], now: datetime, current: dict[str, str]
) -> None:
    """Consent traits become ledger records when they change the customer's `current` state
    (which the caller loaded in bulk, and which is updated here)."""
    for trait, (channel, opt_in_means) in TRAIT_CONSENTS.items():
        if trait in traits:
            status = OPTED_IN if truthy(traits[trait]) == opt_in_means else OPTED_OUT
            if current.get(channel) != status:
                session.add(
                    Consent(
                        customer_id=customer_id,
                        channel=channel,
                        status=status,
                        source="identify",
                        evidence={"trait": trait, "value": traits[trait]},
                        recorded_at=now,
                    )
                )
                current[channel] = status


async def suppress(session: AsyncSession, channel: str, address: str, reason: str, now: datetime) -> None:
    from orchestrator.storage.queries import insert_ignoring_conflict

    await insert_ignoring_conflict(
        session,
        Suppression,
        dict(channel=channel, address=address, reason=reason, created_at=now),
        ["channel", "address"],
    )


def _channel_addresses(customer) -> set[tuple[str, str]]:
    pairs = {(Channel.email.value, customer.email)} if customer.email else set()
    for number in (customer.phone, customer.whatsapp):
        if number:
            pairs |= {(channel.value, number) for channel in PHONE_CHANNELS}
    return pairs


async def load_permissions(session: AsyncSession, customers, erasure_key: str | None) -> dict[int, SendPermissions]:
    """Send permissions for many customers in four queries. `erasure_key` is the runtime's
    `settings.erasure_key`: it finds the tombstones of erased addresses (`tombstones.py`)."""
    customers = list(customers)
    states = await current_consents(session, {c.id for c in customers})
    addresses = {a for c in customers for a in (c.email, c.phone, c.whatsapp) if a}
    suppressed = await suppressed_addresses(session, addresses)
    pairs = {c.id: _channel_addresses(c) for c in customers}
    erased = await erased_addresses(session, erasure_key, set().union(*pairs.values()))
    return {
        c.id: SendPermissions(
            consents=states.get(c.id, {}),
            whatsapp_window_until=c.whatsapp_window_until,
            suppressed={s for s in suppressed if s[1] in (c.email, c.phone, c.whatsapp)} if suppressed else set(),
            erased=erased & pairs[c.id] if erased else set(),
        )
        for c in customers
    }
