"""`customer_orders`: `Order Completed` events folded into one row per order, kept by the
rollup refresh, so customer-level KPIs read orders rather than every event's JSON.

An order is keyed by its `order_id` (else "event:" + the event's messageId); its customer
is the lowest customer id among its events, its time the earliest `timestamp`, its revenue
the highest of `revenue` (else `total`, else `value`). Folding is a merge (least, least,
greatest), so an event seen twice changes nothing and the order of folding does not matter.

The refresh folds the order events received since the rollup watermark (less the
late-commit margin), found by a partial index on `received_at`. Events written with older
`received_at` (a backfill) wait for `POST /v1/kpis/rebuild`, as the daily rollups do.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.kpis.scope import json_number, json_text
from orchestrator.storage.kpi_models import CustomerOrder
from orchestrator.storage.models import Event

ORDER_EVENT = "Order Completed"
REVENUE_PROPERTIES = ("revenue", "total", "value")  # as orchestrator.delivery.conversions reads them
customer_orders = CustomerOrder.__table__
events = Event.__table__
COLUMNS = ["order_key", "customer_id", "ordered_at", "revenue"]


def order_events(dialect: str, received_since: datetime | None) -> sa.Select:
    """One row per order among the order events received since `received_since` (all without)."""
    e = events.c
    order_id = sa.func.nullif(json_text(e.properties, "order_id"), "")
    revenue = sa.func.coalesce(*(json_number(e.properties, name, dialect) for name in REVENUE_PROPERTIES))
    conditions = [e.type == "track", e.name == ORDER_EVENT]
    if received_since is not None:
        conditions.append(e.received_at >= received_since)
    raw = (
        sa.select(
            sa.func.coalesce(order_id, sa.literal("event:") + e.message_id).label("order_key"),
            e.customer_id,
            e.timestamp.label("at"),
            revenue.label("revenue"),
        )
        .where(*conditions)
        .subquery("order_events")
    )
    return sa.select(
        raw.c.order_key, sa.func.min(raw.c.customer_id), sa.func.min(raw.c.at), sa.func.max(raw.c.revenue)
    ).group_by(raw.c.order_key)


async def fold_orders(session: AsyncSession, received_since: datetime | None) -> None:
    """Merge the order events received since `received_since` into `customer_orders`
    (every event when None: the table is cleared and filled again)."""
    dialect = session.get_bind().dialect.name
    if received_since is None:
        await session.exec(sa.delete(customer_orders))
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(customer_orders).from_select(COLUMNS, order_events(dialect, received_since))
    old, new = customer_orders.c, statement.excluded
    least, greatest = (sa.func.least, sa.func.greatest) if dialect == "postgresql" else (sa.func.min, sa.func.max)
    await session.exec(
        statement.on_conflict_do_update(
            index_elements=["order_key"],
            set_={
                "customer_id": least(old.customer_id, new.customer_id),
                "ordered_at": least(old.ordered_at, new.ordered_at),
                # NULL is "no revenue": greatest/max of a value and NULL must keep the value
                "revenue": sa.case(
                    (old.revenue.is_(None), new.revenue),
                    (new.revenue.is_(None), old.revenue),
                    else_=greatest(old.revenue, new.revenue),
                ),
            },
        )
    )
    if received_since is None and dialect == "postgresql":
        # Filled from nothing: without fresh statistics until autovacuum comes by, the planner
        # guesses a few hundred customers and its hash aggregate spills to disk (2x slower).
        await session.exec(sa.text("ANALYZE customer_orders"))


async def orders_received_since(session: AsyncSession, since: datetime) -> bool:
    e = events.c
    found = await session.exec(
        sa.select(e.id).where(e.type == "track", e.name == ORDER_EVENT, e.received_at >= since).limit(1)
    )
    return found.first() is not None
