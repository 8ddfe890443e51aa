"""Bulk statements whose SQL differs between SQLite and PostgreSQL, on both."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from orchestrator.storage.models import Customer
from orchestrator.storage.queries import insert_many_returning, update_many
from tests.conftest import START


async def _customers(runtime, names: list[str]) -> dict[str, int]:
    rows = [{"user_id": name, "traits": {"name": name}, "created_at": START, "updated_at": START} for name in names]
    async with runtime.sessions() as session, session.begin():
        return dict(await insert_many_returning(session, Customer, rows, ["user_id"], Customer.user_id))


async def _all(runtime) -> dict[str, Customer]:
    async with runtime.sessions() as session:
        return {c.user_id: c for c in (await session.exec(select(Customer))).all()}


async def test_update_many_sets_each_rows_own_values_and_leaves_others_alone(runtime):
    ids = await _customers(runtime, ["ann", "bob", "cyd"])
    later = START + timedelta(hours=1)

    async with runtime.sessions() as session, session.begin():
        await update_many(
            session,
            Customer.__table__,
            "id",
            [
                {
                    "id": ids["ann"],
                    "email": "ann@example.com",
                    "traits": {"tier": "gold"},
                    "whatsapp_window_until": later,
                },
                {"id": ids["cyd"], "email": None, "traits": {}, "whatsapp_window_until": None},
            ],
        )

    customers = await _all(runtime)
    assert (customers["ann"].email, customers["ann"].traits) == ("ann@example.com", {"tier": "gold"})
    assert customers["ann"].whatsapp_window_until.replace(tzinfo=later.tzinfo) == later
    assert (customers["cyd"].email, customers["cyd"].traits, customers["cyd"].whatsapp_window_until) == (None, {}, None)
    assert customers["bob"].traits == {"name": "bob"}  # not in the list: untouched


async def test_update_many_with_no_rows_does_nothing(runtime):
    await _customers(runtime, ["ann"])
    async with runtime.sessions() as session, session.begin():
        await update_many(session, Customer.__table__, "id", [])
    assert (await _all(runtime))["ann"].traits == {"name": "ann"}


async def test_insert_many_returning_skips_existing_keys(runtime):
    first = await _customers(runtime, ["ann", "bob"])
    again = await _customers(runtime, ["bob", "cyd"])
    assert set(again) == {"cyd"}  # bob existed: not inserted, not returned
    assert again["cyd"] not in first.values()
