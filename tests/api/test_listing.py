"""Ops lists: messages (sort, dates, cursor), conversions, customer search; keyset cursors
that every page query answers from an index (checked on PostgreSQL's plans)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from orchestrator.storage.feedback_models import Conversion
from orchestrator.storage.models import Customer, Enrollment, Message
from tests.conftest import START

# Ten messages, two per minute: equal timestamps must page by id without loss or repeat.
TIMES = [START + timedelta(minutes=n // 2) for n in range(10)]


@pytest.fixture
async def history(runtime):
    """Customers ann, anna and bob; ten messages to ann; a conversion for each of them."""
    async with runtime.sessions() as session, session.begin():
        customers = [
            Customer(user_id=u, email=f"{u}@example.com", phone=p, traits={}, created_at=START, updated_at=START)
            for u, p in (("ann", "+14155550101"), ("anna", None), ("bob", "+14155550103"))
        ]
        session.add_all(customers)
        await session.flush()
        enrollment = Enrollment(
            journey_id="welcome", journey_version="v1", customer_id=customers[0].id, entered_at=START, context={}
        )
        session.add(enrollment)
        await session.flush()
        messages = [
            Message(
                send_key=f"k{n}",
                customer_id=customers[0].id,
                enrollment_id=enrollment.id,
                journey_id="welcome" if n % 2 else "cart",
                template="welcome-email" if n % 2 else "cart-email",
                channel="email",
                status="sent",
                created_at=at,
                updated_at=at,
            )
            for n, at in enumerate(TIMES)
        ]
        session.add_all(messages)
        await session.flush()
        session.add_all(
            [
                Conversion(
                    order_key=f"o{n}",
                    event_id=n,
                    customer_id=customers[0].id,
                    enrollment_id=enrollment.id,
                    journey_id="welcome" if n % 2 else "cart",
                    message_id=m.id,
                    channel="email",
                    converted_at=m.created_at + timedelta(hours=1),
                )
                for n, m in enumerate(messages)
            ]
        )
    return [m.id for m in messages]


async def walk(client, path: str, params: dict, key: str = "id") -> list[list]:
    """Every page of a list, following next_cursor: the `key` of each item, page by page."""
    pages, cursor = [], None
    while True:
        response = await client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append([item[key] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


async def test_messages_page_by_cursor_oldest_first_by_default(client, history):
    pages = await walk(client, "/v1/messages", {"limit": 3})
    assert pages == [history[0:3], history[3:6], history[6:9], history[9:10]]


async def test_messages_newest_first_and_within_dates(client, history):
    pages = await walk(client, "/v1/messages", {"limit": 4, "sort": "-created_at"})
    assert sum(pages, []) == list(reversed(history))
    window = {"from": TIMES[2].isoformat(), "to": TIMES[6].isoformat(), "limit": 3}  # [minute 1, minute 3)
    assert sum(await walk(client, "/v1/messages", window), []) == history[2:6]
    assert sum(await walk(client, "/v1/messages", {**window, "journey": "welcome"}), []) == [history[3], history[5]]


async def test_the_total_is_counted_up_to_a_cap_then_said_to_exceed_it(client, history, monkeypatch):
    from orchestrator.api import customers as listing

    monkeypatch.setattr(listing, "TOTAL_COUNTED_UP_TO", 6)
    everything = (await client.get("/v1/messages", params={"limit": 4})).json()
    assert (everything["total"], everything["total_exceeds"]) == (None, 6)
    assert everything["next_cursor"] is not None and len(everything["items"]) == 4
    exactly = (await client.get("/v1/messages", params={"customer": "ann", "journey": "cart"})).json()
    assert (exactly["total"], exactly["total_exceeds"]) == (5, None)
    monkeypatch.setattr(listing, "TOTAL_COUNTED_UP_TO", 10)  # as many as there are: still exact
    assert (await client.get("/v1/messages", params={"customer": "ann"})).json()["total"] == 10
    assert (await client.get("/v1/messages", params={"customer": "bob"})).json()["total"] == 0


async def test_messages_by_template(client, history):
    assert sum(await walk(client, "/v1/messages", {"limit": 2, "template": "welcome-email"}), []) == history[1::2]
    first = (await client.get("/v1/messages", params={"template": "cart-email", "journey": "cart"})).json()
    assert first["total"] == 5 and [m["template"] for m in first["items"]] == ["cart-email"] * 5
    assert (await client.get("/v1/messages", params={"template": "no-such-template"})).json()["total"] == 0


async def test_the_total_is_counted_on_the_first_page_only(client, history):
    first = (await client.get("/v1/messages", params={"limit": 4})).json()
    assert first["total"] == 10
    second = (await client.get("/v1/messages", params={"limit": 4, "cursor": first["next_cursor"]})).json()
    assert second["total"] is None and len(second["items"]) == 4


async def test_a_cursor_from_another_list_or_order_is_a_422_naming_it(client, history):
    newest = (await client.get("/v1/messages", params={"limit": 1, "sort": "-created_at"})).json()["next_cursor"]
    for cursor in (newest, "garbage", "W10", ""):
        response = await client.get("/v1/messages", params={"cursor": cursor})
        assert response.status_code == 422, cursor
        assert response.json()["detail"][0]["loc"] == ["query", "cursor"]
    conversions = (await client.get("/v1/conversions", params={"limit": 1})).json()["next_cursor"]
    assert (await client.get("/v1/customers", params={"cursor": conversions})).status_code == 422


async def test_conversions_newest_first_by_journey_and_dates(client, history):
    pages = await walk(client, "/v1/conversions", {"limit": 3})
    all_ids = sum(pages, [])
    assert len(all_ids) == 10 and all_ids == sorted(all_ids, reverse=True)
    page = (await client.get("/v1/conversions", params={"journey": "welcome", "sort": "converted_at"})).json()
    assert [c["order_key"] for c in page["items"]] == ["o1", "o3", "o5", "o7", "o9"]
    assert page["items"][0]["user_id"] == "ann" and page["items"][0]["message_id"] == history[1]
    late = (await client.get("/v1/conversions", params={"from": (TIMES[8] + timedelta(hours=1)).isoformat()})).json()
    assert [c["order_key"] for c in late["items"]] == ["o9", "o8"]


async def test_customers_are_searched_by_user_id_prefix_email_or_phone(client, history):
    async def found(q: str) -> list[str]:
        return [c["user_id"] for c in (await client.get("/v1/customers", params={"q": q})).json()["items"]]

    assert await found("ann") == ["anna", "ann"]  # newest first
    assert await found("bob@example.com") == ["bob"]
    assert await found("+1 415 555 0101") == ["ann"]  # written any way, matched in E.164
    assert await found("an%") == [] and await found("b_b") == []  # LIKE wildcards are plain characters
    assert await walk(client, "/v1/customers", {"limit": 2}, key="user_id") == [["bob", "anna"], ["ann"]]
    assert await walk(client, "/v1/customers", {"limit": 1, "q": "ann"}, key="user_id") == [["anna"], ["ann"]]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_each_list_query_is_answered_by_an_index_without_sorting(client, runtime, history):
    """PostgreSQL's plan for each page query, with sequential scans and sorts priced out:
    an index whose columns match the order must serve it, however large the table."""
    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "count(" not in statement:
            statements.append((statement, parameters))

    sa.event.listen(runtime.engine.sync_engine, "before_cursor_execute", capture)
    try:
        expected = {}
        for params, index in (
            (({"limit": 2}), "ix_messages_created"),
            ({"limit": 2, "sort": "-created_at", "journey": "welcome"}, "ix_messages_journey"),
            ({"limit": 2, "status": "sent"}, "ix_messages_status_created"),
            ({"limit": 2, "template": "cart-email"}, "ix_messages_template"),
        ):
            first = (await client.get("/v1/messages", params=params)).json()
            statements.clear()
            await client.get("/v1/messages", params={**params, "cursor": first["next_cursor"]})
            expected[index] = statements[-1]
        for params, index in (
            ({"limit": 2}, "ix_conversions_converted"),
            ({"limit": 2, "journey": "welcome"}, "ix_conversions_journey"),
        ):
            first = (await client.get("/v1/conversions", params=params)).json()
            statements.clear()
            await client.get("/v1/conversions", params={**params, "cursor": first["next_cursor"]})
            expected[index] = statements[-1]
    finally:
        sa.event.remove(runtime.engine.sync_engine, "before_cursor_execute", capture)

    async with runtime.engine.connect() as connection:
        await connection.exec_driver_sql("SET enable_seqscan = off")
        await connection.exec_driver_sql("SET enable_sort = off")
        await connection.exec_driver_sql("SET enable_bitmapscan = off")
        for index, (statement, parameters) in expected.items():
            plan = "\n".join(row[0] for row in await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters))
            assert index in plan and "Sort" not in plan, f"{index}:\n{plan}"
