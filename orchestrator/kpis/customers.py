"""Customer-level KPIs from `Order Completed` track events and NPS answers.

Orders: track events named `Order Completed`, one per order (the same `order_id` sent
twice counts once; an event without one is its own order), at the event's `timestamp`,
worth its `revenue` (else `total`, else `value`) property. The period is [since, until);
without bounds it is the 365 days before `until`, and `until` defaults to now.

Scope: all customers, or, when the query names a journey, step, channel or template, the
customers who had a delivered message matching those filters (and the time range).

- customer lifetime value = average order value × purchase frequency × lifespan, where
  AOV = period revenue / period orders with a revenue, purchase frequency = period orders
  / customers who ordered in the period, × 365 / days in the period (orders per customer
  per year), and lifespan = `lifespan_years` (an assumption, default 3).
- retention rate = (E − N) / S × 100. A customer is *active* at a moment when they
  ordered in the `active_days` (default 365) before it. S = customers active at `since`,
  E = customers active at `until`, N = new customers: first order ever within the period.
  (Counting everyone who ever ordered as a customer would make E − N = S, always 100 %.)
- NPS = % promoters (9-10) − % detractors (0-6) among the period's answers (every answer
  counts, a customer answering twice counts twice).

Orders are read from `customer_orders` (`orchestrator.kpis.orders`), the order events
already deduplicated and parsed by the rollup refresh, so these figures are as fresh as the
last refresh. NPS answers are few and indexed by time: they are counted live.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.kpis.formulas import lifetime_value, net_promoter_score, retention_rate
from orchestrator.kpis.orders import customer_orders
from orchestrator.kpis.scope import KpiScope, counting, message_conditions, messages, without_jit
from orchestrator.storage.feedback_models import NpsResponse

DEFAULT_PERIOD = timedelta(days=365)
DEFAULT_ACTIVE_DAYS = 365
DEFAULT_LIFESPAN_YEARS = 3.0

nps_responses = NpsResponse.__table__


def customer_period(scope: KpiScope, now: datetime) -> tuple[datetime, datetime]:
    until = scope.until or now
    return scope.since or until - DEFAULT_PERIOD, until


def _reached_customers(scope: KpiScope) -> sa.Select | None:
    if not scope.narrows_messages:
        return None
    return sa.select(messages.c.customer_id).where(*message_conditions(scope), messages.c.delivered_at.is_not(None))


def _orders(scope: KpiScope, until: datetime):
    """The orders before `until` of the customers in scope. Scoped, a CTE: the reached
    customers are found once, not once per figure."""
    o = customer_orders.c
    if (reached := _reached_customers(scope)) is None:
        return customer_orders
    return sa.select(customer_orders).where(o.ordered_at < until, o.customer_id.in_(reached)).cte("orders")


def _distinct_customers(orders, *conditions) -> sa.ScalarSelect:
    return sa.select(sa.func.count(sa.distinct(orders.c.customer_id))).where(*conditions).scalar_subquery()


async def customer_kpis(
    session: AsyncSession,
    scope: KpiScope,
    now: datetime,
    *,
    lifespan_years: float = DEFAULT_LIFESPAN_YEARS,
    active_days: int = DEFAULT_ACTIVE_DAYS,
) -> dict[str, Any]:
    await without_jit(session)
    since, until = customer_period(scope, now)
    orders = _orders(scope, until)
    o = orders.c
    active = timedelta(days=active_days)
    in_period = sa.and_(o.ordered_at >= since, o.ordered_at < until)
    # Each figure is one index range over the orders' times, never a pass grouping every
    # customer who ever ordered. A new customer ordered in the period and never before it.
    earlier = customer_orders.alias("earlier")
    ordered_before = sa.exists().where(earlier.c.customer_id == o.customer_id, earlier.c.ordered_at < since)
    period = (
        (
            await session.exec(
                sa.select(
                    sa.select(sa.func.count()).where(in_period).scalar_subquery().label("orders"),
                    sa.select(sa.func.count(o.revenue)).where(in_period).scalar_subquery().label("orders_with_revenue"),
                    sa.select(sa.func.sum(o.revenue)).where(in_period).scalar_subquery().label("revenue"),
                    _distinct_customers(orders, in_period).label("customers"),
                    _distinct_customers(orders, o.ordered_at >= since - active, o.ordered_at < since).label("at_start"),
                    _distinct_customers(orders, o.ordered_at >= until - active, o.ordered_at < until).label("at_end"),
                    _distinct_customers(orders, in_period, ~ordered_before).label("new"),
                )
            )
        )
        .mappings()
        .one()
    )

    answers = nps_responses.c
    nps_conditions = [answers.received_at >= since, answers.received_at < until]
    if (reached := _reached_customers(scope)) is not None:
        nps_conditions.append(answers.customer_id.in_(reached))
    nps = (
        (
            await session.exec(
                sa.select(
                    sa.func.count().label("responses"),
                    counting(answers.score >= 9).label("promoters"),
                    counting(answers.score <= 6).label("detractors"),
                ).where(*nps_conditions)
            )
        )
        .mappings()
        .one()
    )

    revenue = float(period["revenue"] or 0)
    value = lifetime_value(
        revenue,
        int(period["orders_with_revenue"]),
        int(period["orders"]),
        period["customers"],
        (until - since).total_seconds() / 86400,
        lifespan_years,
    )
    return {
        "since": since,
        "until": until,
        "orders": int(period["orders"]),
        "ordering_customers": period["customers"],
        "revenue": round(revenue, 2),
        **asdict(value),
        "active_days": active_days,
        "customers_at_start": period["at_start"],
        "customers_at_end": period["at_end"],
        "new_customers": period["new"],
        "retention_rate": retention_rate(period["at_start"], period["at_end"], period["new"]),
        "nps_responses": nps["responses"],
        "promoters": nps["promoters"],
        "detractors": nps["detractors"],
        "passives": nps["responses"] - nps["promoters"] - nps["detractors"],
        "nps": net_promoter_score(nps["promoters"], nps["detractors"], nps["responses"]),
    }
