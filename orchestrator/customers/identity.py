"""Who a customer is: find or create them by `user_id`, lock them, apply their traits.

Events, inbound messages and imports all come through here, so a customer is created one way
and locked in one order everywhere.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.customers.timezones import TimezoneSource, infer_timezone
from orchestrator.storage.models import Customer, IdentityLink
from orchestrator.storage.queries import any_of, insert_many_ignoring_conflict

TYPED_TRAITS = ("email", "phone", "whatsapp", "locale", "timezone")


async def customer_ids(session: AsyncSession, user_ids: set[str], now: datetime) -> dict[str, int]:
    """user_id → customer id, creating the customers not seen before. Takes no lock."""
    found = await _ids_of(session, user_ids)
    missing = sorted(user_ids - found.keys())
    if missing:  # another request may create the same customer meanwhile: ON CONFLICT, then read again
        await insert_many_ignoring_conflict(
            session,
            Customer,
            [dict(user_id=u, traits={}, created_at=now, updated_at=now) for u in missing],
            ["user_id"],
        )
        found.update(await _ids_of(session, set(missing)))
    return found


async def _ids_of(session: AsyncSession, user_ids: set[str]) -> dict[str, int]:
    rows = await session.exec(
        select(Customer.user_id, Customer.id).where(any_of(session, col(Customer.user_id), user_ids))
    )
    return dict(rows.all())


async def lock_customers(session: AsyncSession, user_ids: set[str]) -> dict[str, Customer]:
    """Lock these customers, in a fixed order so concurrent requests never deadlock.

    FOR NO KEY UPDATE, not FOR UPDATE: requests that change the customer's journeys queue
    behind each other, while an event that only references the customer (its foreign key
    check takes FOR KEY SHARE) is stored without waiting."""
    if not user_ids:
        return {}
    locked = await session.exec(
        select(Customer)
        .where(any_of(session, col(Customer.user_id), user_ids))
        .order_by(col(Customer.user_id))
        .with_for_update(key_share=True)
    )
    return {customer.user_id: customer for customer in locked}


async def link_anonymous_ids(session: AsyncSession, links: dict[str, int], now: datetime) -> None:
    """Record that these anonymousIds are these customers (anonymousId → customer id);
    an id already linked keeps its first customer."""
    await insert_many_ignoring_conflict(
        session,
        IdentityLink,
        [dict(anonymous_id=a, customer_id=c, linked_at=now) for a, c in sorted(links.items())],
        ["anonymous_id"],
    )


def apply_traits(customer: Customer, traits: dict, now: datetime) -> None:
    for name in TYPED_TRAITS:
        if name in traits:
            setattr(customer, name, traits[name])
    if "timezone" in traits:  # a zone said outright wins over one guessed from the number; null forgets it
        customer.timezone_source = TimezoneSource.trait if traits["timezone"] else None
    infer_timezone(customer)
    customer.traits = {**customer.traits, **traits}
    customer.updated_at = now
