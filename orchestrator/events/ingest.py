"""Accept Segment calls: store each event once, update the customer, move journeys.

Everything for one request happens in one transaction, and the caller answers 2xx only
after it commits: an accepted event is never lost, and a failed request leaves nothing
half-written. Idempotency is the database's job (unique `messageId`).

A batch costs a fixed handful of queries, not a handful per event: customers are created
and locked together, events inserted in one statement, and what the journey rules need is
loaded once; the calls are then applied in order, in memory, and flushed together. Only
the customers a call can change are locked (see `ingest`).

Every Segment call type is stored as an event (`page` and `screen` for web sessions,
`group` and `alias` so nothing a CDP forwards is lost); only `identify` and `track` move
customers and journeys. A call with only an `anonymousId` is stored without a customer;
an `identify` or `alias` that names both ids records the link (`customers/identity.py`).
An identify from a web page that cannot prove its userId is stored whole, but its address
and consent traits are not applied (`site_identity.py`, the event's `withheld_traits`); a
track from such a page is stored, marked `unverified`, and moves no journey.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.customers.consent import current_consents, record_trait_consents
from orchestrator.customers.identity import apply_traits, customer_ids, link_anonymous_ids, lock_customers
from orchestrator.engine.enrollments import load_customer_journeys, react_to_event
from orchestrator.events.schemas import AliasCall, AnyCall, GroupCall, IdentifyCall, PageCall, TrackCall
from orchestrator.journeys.live import refresh_catalog
from orchestrator.runtime import Runtime
from orchestrator.storage.models import Event
from orchestrator.storage.queries import insert_many_returning


@dataclass(frozen=True)
class Accepted:
    message_id: str
    duplicate: bool
    event_id: int | None


def _name_and_properties(call: AnyCall) -> tuple[str | None, dict]:
    if isinstance(call, TrackCall):
        return call.event, call.properties
    if isinstance(call, IdentifyCall):
        return None, call.traits.model_dump(exclude_none=True)
    if isinstance(call, PageCall):  # and ScreenCall
        extra = {"category": call.category} if call.category and "category" not in call.properties else {}
        return call.name, {**call.properties, **extra}
    if isinstance(call, GroupCall):
        return call.groupId, call.traits
    assert isinstance(call, AliasCall)
    return None, {"previousId": call.previousId}


def _event_row(call: AnyCall, customer_id: int | None, now: datetime) -> dict:
    name, properties = _name_and_properties(call)
    return dict(
        message_id=call.messageId or f"generated-{uuid.uuid4()}",
        customer_id=customer_id,
        anonymous_id=call.anonymousId,
        type=call.type,
        name=name,
        properties=properties,
        context=call.context or None,
        timestamp=call.timestamp or now,
        received_at=now,
        withheld_traits=(sorted(call.withheld_traits) or None) if isinstance(call, IdentifyCall) else None,
        unverified=True if isinstance(call, TrackCall) and call.unverified else None,
    )


def _links(calls: list[AnyCall]) -> dict[str, str]:
    """anonymousId (or alias previousId) → userId, for the calls that name both."""
    links = {}
    for call in calls:
        if isinstance(call, AliasCall):
            links[call.previousId] = call.userId
        elif isinstance(call, IdentifyCall) and call.userId and call.anonymousId:
            links[call.anonymousId] = call.userId
    return links


async def ingest(session: AsyncSession, runtime: Runtime, calls: list[AnyCall]) -> list[Accepted]:
    await refresh_catalog(runtime)
    now = runtime.clock.now()
    ids = await customer_ids(session, {call.userId for call in calls if call.userId is not None}, now)
    # Only customers whose journeys this request can change are locked and loaded: those
    # identified, and those with a Track event some journey reacts to. Most events (page
    # and product views) change no enrollment, so they skip the lock and the journey state.
    reacting = runtime.catalog.reacting_events
    customers = await lock_customers(
        session,
        {
            call.userId
            for call in calls
            if call.userId is not None
            and (
                isinstance(call, IdentifyCall)
                or (isinstance(call, TrackCall) and call.event in reacting and not call.unverified)
            )
        },
    )
    rows = [_event_row(call, ids.get(call.userId), now) for call in calls]  # type: ignore[arg-type]
    # One INSERT for the batch; a messageId already stored (or repeated in the batch) is a duplicate.
    event_ids = dict(await insert_many_returning(session, Event, rows, ["message_id"], Event.message_id))
    states = await load_customer_journeys(session, {c.id for c in customers.values()}, now)
    identified = {customers[c.userId].id for c in calls if isinstance(c, IdentifyCall) and c.userId is not None}
    consents = await current_consents(session, identified) if identified else {}
    accepted = []
    for call, row in zip(calls, rows):
        event_id = event_ids.pop(row["message_id"], None)  # pop: a repeat within the batch is a duplicate
        accepted.append(Accepted(row["message_id"], event_id is None, event_id))
        if event_id is None or call.userId not in customers or not isinstance(call, (TrackCall, IdentifyCall)):
            continue
        customer = customers[call.userId]
        if isinstance(call, TrackCall):
            if call.unverified:  # a page's call that cannot prove its userId moves no journey
                continue
            state = states[customer.id]
            # No live enrollment and no journey triggered by it: nothing can react, so skip
            # building the ORM object.
            if state.enrollments or runtime.catalog.triggered_by(call.event):
                await react_to_event(session, runtime, customer, Event(id=event_id, **row), state)
        else:
            traits = {k: v for k, v in row["properties"].items() if k not in call.withheld_traits}
            apply_traits(customer, traits, now)
            record_trait_consents(session, customer.id, traits, now, consents.setdefault(customer.id, {}))
    links = _links(calls)
    if links:
        await link_anonymous_ids(session, {anonymous: ids[user] for anonymous, user in links.items()}, now)
    await session.flush()
    return accepted


async def ingest_committed(runtime: Runtime, calls: list[AnyCall]) -> list[Accepted]:
    """`ingest` in a transaction of its own; returns once it has committed."""
    async with runtime.sessions() as session, session.begin():
        return await ingest(session, runtime, calls)
