"""Customer lifetime value, retention and NPS from order events and answers, exact figures.

Period [2026-03-01, 2026-04-01) (31 days), customers active for 30 days after an order:

    a  2026-02-10 80.00, 2026-03-05 40.00          active at start and end (retained)
    b  2026-02-20 100.00                           active at start only (lost)
    g  2026-02-25 15.00                            active at start only (lost)
    c  2025-12-01 30.00, 2026-03-10 60.00          back after a lapse: active at end, not new
    d  2026-03-15 50.00, 2026-03-16 "25.50"        new
    e  2026-03-20 E-1 70.00 (sent twice), 2026-03-21 (no revenue)   new
    f  2026-04-02 99.00                            after the period: ignored

S = {a, b, g} = 3, E = {a, c, d, e} = 4, N = {d, e} = 2: retention (4 − 2) / 3 = 66.67 %.
Period orders 6 (5 with revenue, 245.50), 4 customers: AOV 49.10, frequency 1.5, per year
1.5 × 365 / 31 = 17.6613; CLV (3 years) = 49.10 × 17.6613 × 3 = 2601.51.
NPS answers in the period: a 10, b 9, c 8, d 6, e 0, g 3 (and a's 10 in February, outside):
2 promoters, 3 detractors of 6 → −16.67.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from orchestrator.clock import utc
from orchestrator.kpis.orders import customer_orders
from orchestrator.kpis.rollup import refresh_rollups
from orchestrator.storage.feedback_models import NpsResponse
from orchestrator.storage.models import Customer, Event, Message
from tests.conftest import refresh_kpis_as_the_worker_does

PERIOD = {"from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=12, tzinfo=timezone.utc)


ORDERS = [  # customer, day, order_id, properties
    ("a", "2026-02-10", "A-1", {"revenue": 80}),
    ("a", "2026-03-05", "A-2", {"revenue": 40}),
    ("b", "2026-02-20", "B-1", {"revenue": 100}),
    ("g", "2026-02-25", "G-1", {"total": 15}),
    ("c", "2025-12-01", "C-1", {"revenue": 30}),
    ("c", "2026-03-10", None, {"value": 60.0}),
    ("d", "2026-03-15", "D-1", {"revenue": 50}),
    ("d", "2026-03-16", "D-2", {"revenue": "25.50"}),
    ("e", "2026-03-20", "E-1", {"revenue": 70}),
    ("e", "2026-03-20", "E-1", {"revenue": 70}),
    ("e", "2026-03-21", "E-2", {}),
    ("f", "2026-04-02", "F-1", {"revenue": 99}),
]
ANSWERS = [
    ("a", "2026-03-09", 10),
    ("b", "2026-03-09", 9),
    ("c", "2026-03-09", 8),
    ("d", "2026-03-20", 6),
    ("e", "2026-03-25", 0),
    ("g", "2026-03-02", 3),
    ("a", "2026-02-09", 10),
]
# cart messages: a and d reached in March; b's was never delivered; c's was in February.
CART_MESSAGES = [
    ("a", "2026-03-03", True),
    ("d", "2026-03-03", True),
    ("b", "2026-03-03", False),
    ("c", "2026-02-03", True),
]


@pytest.fixture
async def dataset(runtime):
    async with runtime.sessions() as session, session.begin():
        customers = {
            name: Customer(user_id=name, created_at=at("2025-01-01"), updated_at=at("2025-01-01")) for name in "abcdefg"
        }
        session.add_all(customers.values())
        await session.flush()
        for i, (name, day, order_id, properties) in enumerate(ORDERS):
            session.add(
                Event(
                    message_id=f"evt-{i}",
                    customer_id=customers[name].id,
                    type="track",
                    name="Order Completed",
                    properties={**properties, **({"order_id": order_id} if order_id else {})},
                    timestamp=at(day),
                    received_at=at(day),
                )
            )
        session.add(
            Event(
                message_id="evt-other",
                customer_id=customers["b"].id,
                type="track",
                name="Cart Abandoned",
                properties={"revenue": 500},
                timestamp=at("2026-03-10"),
                received_at=at("2026-03-10"),
            )
        )
        for name, day, score in ANSWERS:
            session.add(NpsResponse(customer_id=customers[name].id, score=score, received_at=at(day)))
        for i, (name, day, delivered) in enumerate(CART_MESSAGES):
            session.add(
                Message(
                    send_key=f"cart-{i}",
                    customer_id=customers[name].id,
                    journey_id="cart",
                    step_id="sms",
                    channel="sms",
                    status="delivered" if delivered else "sent",
                    created_at=at(day),
                    updated_at=at(day),
                    sent_at=at(day),
                    delivered_at=at(day) if delivered else None,
                )
            )


async def customer_figures(client, **params) -> dict:
    """Read after the worker's refresh, which folds the order events into `customer_orders`."""
    await refresh_kpis_as_the_worker_does(client)
    response = await client.get("/v1/kpis", params={**PERIOD, "include": "customers", "active_days": 30, **params})
    assert response.status_code == 200, response.text
    return response.json()["customers"]


async def test_lifetime_value_retention_and_nps_of_everyone(client, dataset):
    figures = await customer_figures(client)
    assert figures == {
        "since": "2026-03-01T00:00:00Z",
        "until": "2026-04-01T00:00:00Z",
        "orders": 6,
        "ordering_customers": 4,
        "revenue": 245.5,
        "average_order_value": 49.1,
        "purchase_frequency": 1.5,
        "purchase_frequency_per_year": 17.6613,
        "lifespan_years": 3.0,
        "customer_lifetime_value": 2601.51,
        "active_days": 30,
        "customers_at_start": 3,
        "customers_at_end": 4,
        "new_customers": 2,
        "retention_rate": 66.67,
        "nps_responses": 6,
        "promoters": 2,
        "passives": 1,
        "detractors": 3,
        "nps": -16.67,
    }


async def test_scoped_to_the_customers_a_journey_reached(client, dataset):
    figures = await customer_figures(client, journey="cart", lifespan_years=2)
    assert (figures["orders"], figures["ordering_customers"], figures["revenue"]) == (3, 2, 115.5)
    assert (figures["average_order_value"], figures["purchase_frequency"]) == (38.5, 1.5)
    assert figures["customer_lifetime_value"] == round(38.5 * 1.5 * 365 / 31 * 2, 2)
    assert (figures["customers_at_start"], figures["customers_at_end"], figures["new_customers"]) == (1, 2, 1)
    assert figures["retention_rate"] == 100.0
    assert (figures["nps_responses"], figures["promoters"], figures["detractors"], figures["nps"]) == (2, 1, 1, 0.0)


async def test_undefined_without_orders_or_answers(client, runtime):
    figures = await customer_figures(client)
    assert (figures["orders"], figures["revenue"], figures["nps_responses"]) == (0, 0.0, 0)
    for name in ("average_order_value", "purchase_frequency", "customer_lifetime_value", "retention_rate", "nps"):
        assert figures[name] is None, name


async def test_only_on_request(client, runtime):
    assert (await client.get("/v1/kpis")).json()["customers"] is None


async def test_default_period_is_the_year_before_now(client, runtime):
    figures = (await client.get("/v1/kpis", params={"include": "customers"})).json()["customers"]
    assert (figures["since"], figures["until"]) == ("2025-03-02T17:00:00Z", "2026-03-02T17:00:00Z")


async def test_orders_received_after_a_refresh_count_at_the_next(client, runtime, dataset):
    await refresh_rollups(runtime)
    async with runtime.sessions() as session, session.begin():
        d = (await session.exec(sa.select(Customer.id).where(Customer.user_id == "d"))).scalar_one()
        session.add(
            Event(
                message_id="evt-late",
                customer_id=d,
                type="track",
                name="Order Completed",
                properties={"order_id": "D-3", "revenue": 4.5},
                timestamp=at("2026-03-17"),
                received_at=runtime.clock.now(),
            )
        )
    figures = await customer_figures(client)
    assert (figures["orders"], figures["ordering_customers"], figures["revenue"]) == (7, 4, 250.0)


async def test_an_order_sent_again_merges_into_one(runtime):
    """Folded in two refreshes: the earliest time, the lowest customer, the highest revenue."""
    async with runtime.sessions() as session, session.begin():
        people = [Customer(user_id=name, created_at=at("2025-01-01"), updated_at=at("2025-01-01")) for name in "xy"]
        session.add_all(people)
        await session.flush()
        session.add(
            Event(
                message_id="o-1",
                customer_id=people[1].id,
                type="track",
                name="Order Completed",
                properties={"order_id": "O-1"},
                timestamp=at("2026-03-01"),
                received_at=runtime.clock.now(),
            )
        )
    await refresh_rollups(runtime)
    async with runtime.sessions() as session, session.begin():
        session.add(
            Event(
                message_id="o-1-again",
                customer_id=people[0].id,
                type="track",
                name="Order Completed",
                properties={"order_id": "O-1", "revenue": "12.50"},
                timestamp=at("2026-02-28"),
                received_at=runtime.clock.now(),
            )
        )
    await refresh_rollups(runtime)
    async with runtime.sessions() as session:
        [(key, customer_id, ordered_at, revenue)] = (await session.exec(sa.select(customer_orders))).all()
    assert (key, customer_id, utc(ordered_at), float(revenue)) == ("O-1", people[0].id, at("2026-02-28"), 12.5)
