"""Accept Segment calls: store each event once, update the customer, move journeys.

Everything for one request happens in one transaction, and the caller answers 2xx only
after it commits: an accepted event is never lost, and a failed request leaves nothing
half-written. Idempotency is the database's job (unique `messageId`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.consent import record_trait_consents
from orchestrator.engine.enrollments import react_to_event
from orchestrator.events.schemas import IdentifyCall, TrackCall
from orchestrator.journeys.live import refresh_catalog
from orchestrator.runtime import Runtime
from orchestrator.storage.models import Customer, Event
from orchestrator.storage.queries import insert_ignoring_conflict, insert_many_ignoring_conflict

TYPED_TRAITS = ("email", "phone", "whatsapp", "locale", "timezone")


@dataclass(frozen=True)
class Accepted:
    message_id: str
    duplicate: bool
    event_id: int | None


async def lock_customers(session: AsyncSession, user_ids: list[str], now: datetime) -> dict[str, Customer]:
    """Create missing customers and lock all of them, in a fixed order so batches never deadlock."""
    ordered = sorted(set(user_ids))
    await insert_many_ignoring_conflict(
        session, Customer, [dict(user_id=u, traits={}, created_at=now, updated_at=now) for u in ordered], ["user_id"]
    )
    locked = await session.exec(
        select(Customer).where(col(Customer.user_id).in_(ordered)).order_by(col(Customer.user_id)).with_for_update()
    )
    return {customer.user_id: customer for customer in locked}


def apply_traits(customer: Customer, call: IdentifyCall, now: datetime) -> None:
    traits = call.traits.model_dump(exclude_none=True)
    for name in TYPED_TRAITS:
        if name in traits:
            setattr(customer, name, traits[name])
    customer.traits = {**customer.traits, **traits}
    customer.updated_at = now


async def ingest(session: AsyncSession, runtime: Runtime, calls: list[TrackCall | IdentifyCall]) -> list[Accepted]:
    await refresh_catalog(runtime)
    now = runtime.clock.now()
    customers = await lock_customers(session, [call.userId for call in calls], now)
    accepted = []
    for call in calls:
        customer = customers[call.userId]
        message_id = call.messageId or f"generated-{uuid.uuid4()}"
        is_track = isinstance(call, TrackCall)
        values = dict(
            message_id=message_id,
            customer_id=customer.id,
            type=call.type,
            name=call.event if is_track else None,
            properties=call.properties if is_track else call.traits.model_dump(exclude_none=True),
            timestamp=call.timestamp or now,
            received_at=now,
        )
        event_id = await insert_ignoring_conflict(session, Event, values, ["message_id"])
        accepted.append(Accepted(message_id, event_id is None, event_id))
        if event_id is None:
            continue  # the same messageId again: one effect only
        if is_track:
            await react_to_event(session, runtime, customer, Event(id=event_id, **values))
        else:
            apply_traits(customer, call, now)
            await record_trait_consents(session, customer.id, call.traits.model_dump(exclude_none=True), now)
        await session.flush()
    return accepted
