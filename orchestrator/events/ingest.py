"""Accept Segment calls: store each event once, update the customer, move journeys.

Everything for one request happens in one transaction, and the caller answers 2xx only
after it commits: an accepted event is never lost, and a failed request leaves nothing
half-written. Idempotency is the database's job (unique `messageId`).

A batch costs a fixed handful of queries, not a handful per event: customers are created
and locked together, events inserted in one statement, and what the journey rules need is
loaded once; the calls are then applied in order, in memory, and flushed together. Only
the customers a call can change are locked (see `ingest`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.consent import current_consents, record_trait_consents
from orchestrator.engine.enrollments import load_journey_states, react_to_event
from orchestrator.events.schemas import IdentifyCall, TrackCall
from orchestrator.journeys.live import refresh_catalog
from orchestrator.runtime import Runtime
from orchestrator.storage.models import Customer, Event
from orchestrator.storage.queries import any_of, insert_many_ignoring_conflict, insert_many_returning

TYPED_TRAITS = ("email", "phone", "whatsapp", "locale", "timezone")


@dataclass(frozen=True)
class Accepted:
    message_id: str
    duplicate: bool
    event_id: int | None


async def customer_ids(session: AsyncSession, user_ids: set[str], now: datetime) -> dict[str, int]:
    """user_id → customer id, creating the customers not seen before. Takes no lock."""
    found = await _ids_of(session, user_ids)
    missing = sorted(user_ids - found.keys())
    if missing:  # another request may create the same customer meanwhile: ON CONFLICT, then read again
        await insert_many_ignoring_conflict(
            session, Customer, [dict(user_id=u, traits={}, created_at=now, updated_at=now) for u in missing],
            ["user_id"])
        found.update(await _ids_of(session, set(missing)))
    return found


async def _ids_of(session: AsyncSession, user_ids: set[str]) -> dict[str, int]:
    rows = await session.exec(select(Customer.user_id, Customer.id).where(any_of(session, col(Customer.user_id), user_ids)))
    return dict(rows.all())


async def lock_customers(session: AsyncSession, user_ids: set[str]) -> dict[str, Customer]:
    """Lock these customers, in a fixed order so concurrent requests never deadlock.

    FOR NO KEY UPDATE, not FOR UPDATE: requests that change the customer's journeys queue
    behind each other, while an event that only references the customer (its foreign key
    check takes FOR KEY SHARE) is stored without waiting."""
    if not user_ids:
        return {}
    locked = await session.exec(
        select(Customer).where(any_of(session, col(Customer.user_id), user_ids))
        .order_by(col(Customer.user_id)).with_for_update(key_share=True)
    )
    return {customer.user_id: customer for customer in locked}


def apply_traits(customer: Customer, traits: dict, now: datetime) -> None:
    for name in TYPED_TRAITS:
        if name in traits:
            setattr(customer, name, traits[name])
    customer.traits = {**customer.traits, **traits}
    customer.updated_at = now


def _event_row(call: TrackCall | IdentifyCall, customer_id: int, now: datetime) -> dict:
    is_track = isinstance(call, TrackCall)
    return dict(
        message_id=call.messageId or f"generated-{uuid.uuid4()}",
        customer_id=customer_id,
        type=call.type,
        name=call.event if is_track else None,
        properties=call.properties if is_track else call.traits.model_dump(exclude_none=True),
        timestamp=call.timestamp or now,
        received_at=now,
    )


async def ingest(session: AsyncSession, runtime: Runtime, calls: list[TrackCall | IdentifyCall]) -> list[Accepted]:
    await refresh_catalog(runtime)
    now = runtime.clock.now()
    ids = await customer_ids(session, {call.userId for call in calls}, now)
    # Only customers whose journeys this request can change are locked and loaded: those
    # identified, and those with a Track event some journey reacts to. Most events (page
    # and product views) change no enrollment, so they skip the lock and the journey state.
    reacting = runtime.catalog.reacting_events
    customers = await lock_customers(session, {call.userId for call in calls
                                               if isinstance(call, IdentifyCall) or call.event in reacting})
    rows = [_event_row(call, ids[call.userId], now) for call in calls]
    # One INSERT for the batch; a messageId already stored (or repeated in the batch) is a duplicate.
    event_ids = dict(await insert_many_returning(session, Event, rows, ["message_id"], Event.message_id))
    states = await load_journey_states(session, {c.id for c in customers.values()}, now)
    identified = {customers[c.userId].id for c in calls if isinstance(c, IdentifyCall)}
    consents = await current_consents(session, identified) if identified else {}
    accepted = []
    for call, row in zip(calls, rows):
        event_id = event_ids.pop(row["message_id"], None)  # pop: a repeat within the batch is a duplicate
        accepted.append(Accepted(row["message_id"], event_id is None, event_id))
        if event_id is None or call.userId not in customers:
            continue
        customer = customers[call.userId]
        if isinstance(call, TrackCall):
            state = states[customer.id]
            # No live enrollment and no journey triggered by it: nothing can react, so skip
            # building the ORM object.
            if state.enrollments or runtime.catalog.triggered_by(call.event):
                await react_to_event(session, runtime, customer, Event(id=event_id, **row), state)
        else:
            apply_traits(customer, row["properties"], now)
            record_trait_consents(session, customer.id, row["properties"], now, consents.setdefault(customer.id, {}))
    await session.flush()
    return accepted


async def ingest_committed(runtime: Runtime, calls: list[TrackCall | IdentifyCall]) -> list[Accepted]:
    """`ingest` in a transaction of its own; returns once it has committed."""
    async with runtime.sessions() as session, session.begin():
        return await ingest(session, runtime, calls)
