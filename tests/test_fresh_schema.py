"""Each test's database is empty and fully migrated, however the test before left it
(tests/fresh_schema.py, through `tests.conftest._reset`)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from orchestrator.storage.database import create_engine, drop_schema, session_factory
from orchestrator.storage.drift import schema_differences
from orchestrator.storage.migrate import current_revisions, head_revisions
from orchestrator.storage.models import Customer
from tests.conftest import START, _reset


@pytest.fixture
async def engine(database_url):
    await _reset(database_url)
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def add_customer(engine, user_id: str) -> int:
    async with session_factory(engine)() as session, session.begin():
        customer = Customer(user_id=user_id, traits={}, created_at=START, updated_at=START)
        session.add(customer)
        await session.flush()
        return customer.id


async def migrated_and_empty(engine) -> bool:
    async with engine.connect() as connection:
        revisions = await connection.run_sync(current_revisions)
        differences = await connection.run_sync(schema_differences)
        customers = (await connection.execute(sa.text("SELECT count(*) FROM customers"))).scalar_one()
    return revisions == head_revisions() and not differences and customers == 0


async def test_rows_are_gone_and_identities_start_again(database_url, engine):
    assert await add_customer(engine, "ann") == 1
    assert await add_customer(engine, "bob") == 2
    await engine.dispose()  # as a test's runtime does at its end

    await _reset(database_url)

    assert await migrated_and_empty(engine)
    assert await add_customer(engine, "cy") == 1


async def test_a_changed_schema_is_migrated_again(database_url, engine):
    async with engine.begin() as connection:
        await connection.execute(sa.text("ALTER TABLE customers ADD COLUMN nickname VARCHAR(40)"))
        await connection.execute(sa.text("DROP TABLE api_keys"))
    await engine.dispose()

    await _reset(database_url)

    assert await migrated_and_empty(engine)


async def test_another_revision_is_migrated_again(database_url, engine):
    async with engine.begin() as connection:
        await connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    await engine.dispose()

    await _reset(database_url)

    assert await migrated_and_empty(engine)


async def test_a_dropped_schema_is_migrated_again(database_url, engine):
    await drop_schema(engine)
    await engine.dispose()

    await _reset(database_url)

    assert await migrated_and_empty(engine)
