"""Migrations build the schema the models describe, on SQLite and on PostgreSQL.

When a model changes without a migration, `test_migrations_match_the_models` fails with
the differences and the command that writes the missing migration.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

from orchestrator.startup import build_runtime
from orchestrator.storage.database import create_engine, drop_schema
from orchestrator.storage.drift import MAKEMIGRATION_HINT, describe_differences, make_migration, schema_differences
from orchestrator.storage.migrate import (
    SchemaNotCurrent,
    current_revisions,
    ensure_schema_current,
    head_revisions,
    upgrade_to_head,
)
from orchestrator.storage.migrations import alembic_config
from tests.conftest import make_settings

# Every test here is about a real database; the one without a database fixture starts interpreters.
pytestmark = pytest.mark.integration


@pytest.fixture
async def empty_engine(database_url):
    engine = create_engine(database_url)
    await drop_schema(engine)  # not even the migrated schema every other test starts from
    yield engine
    await drop_schema(engine)  # leave no odd schema behind for the next test
    await engine.dispose()


async def on_connection(engine, function, *args):
    async with engine.begin() as connection:
        return await connection.run_sync(function, *args)


async def table_names(engine) -> set[str]:
    return await on_connection(engine, lambda connection: set(sa.inspect(connection).get_table_names()))


async def test_migrations_match_the_models(empty_engine):
    await upgrade_to_head(empty_engine)

    assert await on_connection(empty_engine, current_revisions) == head_revisions()
    differences = await on_connection(empty_engine, schema_differences)
    assert not differences, (
        f"{MAKEMIGRATION_HINT}\n"
        f"models vs. migrated database (add_*: only in the models; remove_*: only in the database):\n"
        f"{describe_differences(differences)}"
    )


async def test_upgrading_again_changes_nothing_and_drop_schema_starts_over(empty_engine):
    await upgrade_to_head(empty_engine)
    await upgrade_to_head(empty_engine)
    assert await on_connection(empty_engine, current_revisions) == head_revisions()

    await drop_schema(empty_engine)
    assert await table_names(empty_engine) == set()  # alembic_version included

    await upgrade_to_head(empty_engine)
    assert await on_connection(empty_engine, current_revisions) == head_revisions()


async def test_processes_migrating_at_once_do_not_collide(database_url, empty_engine):
    engines = [create_engine(database_url) for _ in range(4)]
    try:
        await asyncio.gather(*(upgrade_to_head(engine) for engine in engines))
    finally:
        for engine in engines:
            await engine.dispose()
    assert await on_connection(empty_engine, current_revisions) == head_revisions()


async def test_a_model_change_shows_as_a_readable_difference_until_makemigration_writes_it(
    database_url, empty_engine, tmp_path
):
    versions = tmp_path / "versions"
    versions.mkdir()
    await upgrade_to_head(empty_engine)
    changed = sa.MetaData()
    for table in SQLModel.metadata.sorted_tables:
        table.to_metadata(changed)
    customers = changed.tables["customers"]
    customers.append_column(sa.Column("nickname", sa.String(40), nullable=True))
    sa.Index("ix_customers_nickname", customers.c.nickname)

    differences = await on_connection(empty_engine, schema_differences, changed)
    described = describe_differences(differences)
    assert "add_column customers.nickname VARCHAR(40)" in described
    assert "add_index ix_customers_nickname on customers (nickname)" in described
    assert "orchestrator makemigration" in MAKEMIGRATION_HINT

    # Against a scratch SQLite by default; against this very database when it is PostgreSQL.
    url = database_url if database_url.startswith("postgresql") else None
    path = await make_migration(
        "add customers.nickname",
        database_url=url,
        metadata=changed,
        extra_version_dirs=(versions,),
        version_path=versions,
    )
    revisions = len(list(ScriptDirectory.from_config(alembic_config()).walk_revisions()))
    assert path == versions / f"{revisions + 1:04d}_add_customers_nickname.py"
    assert "add_column" in path.read_text() and "nickname" in path.read_text()

    def upgrade_with_the_new_revision(connection):
        command.upgrade(alembic_config(connection, target_metadata=changed, extra_version_dirs=(versions,)), "head")

    await on_connection(empty_engine, upgrade_with_the_new_revision)
    assert not await on_connection(empty_engine, schema_differences, changed)
    # Nothing left to migrate: makemigration says so and writes nothing.
    assert (
        await make_migration(
            "again", database_url=url, metadata=changed, extra_version_dirs=(versions,), version_path=versions
        )
        is None
    )
    assert list(versions.glob("*.py")) == [path]


async def test_without_auto_migrate_an_old_schema_is_refused(database_url, empty_engine):
    settings = make_settings(database_url, auto_migrate=False)
    with pytest.raises(SchemaNotCurrent, match="orchestrator migrate"):
        await build_runtime(settings)

    await upgrade_to_head(empty_engine)
    runtime = await build_runtime(settings)
    await runtime.aclose()


async def test_a_schema_newer_than_the_code_is_accepted_with_a_warning(empty_engine, caplog):
    """A rolling deploy: the next release migrated while this one still runs."""
    await upgrade_to_head(empty_engine)
    await on_connection(
        empty_engine, lambda connection: connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    )

    await ensure_schema_current(empty_engine)
    assert "newer than this code" in caplog.text


async def test_a_database_created_before_migrations_is_adopted(empty_engine):
    def create_all_but_one_table_and_one_index(connection):
        SQLModel.metadata.create_all(connection)
        connection.execute(sa.text("DROP TABLE api_keys"))
        connection.execute(sa.text("DROP INDEX ix_messages_journey"))

    await on_connection(empty_engine, create_all_but_one_table_and_one_index)
    await upgrade_to_head(empty_engine)

    assert await on_connection(empty_engine, current_revisions) == head_revisions()
    assert not await on_connection(empty_engine, schema_differences)


async def test_a_database_from_before_migrations_that_differs_is_refused(empty_engine):
    def create_all_with_a_missing_column(connection):
        SQLModel.metadata.create_all(connection)
        connection.execute(sa.text("ALTER TABLE customers DROP COLUMN timezone"))

    await on_connection(empty_engine, create_all_with_a_missing_column)
    with pytest.raises(SchemaNotCurrent, match=r"add_column customers\.timezone"):
        await upgrade_to_head(empty_engine)
    assert await on_connection(empty_engine, current_revisions) == frozenset()


def test_every_table_is_in_the_metadata_migrations_compare():
    """A table in a module that `orchestrator.storage.database` does not import would get no migration."""
    seen_by_migrations, everywhere = _tables_after(
        "import orchestrator.storage.migrations",
        "import pkgutil, importlib, orchestrator, webhooks\n"
        "for package in (orchestrator, webhooks):\n"
        "    for module in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        if '.migrations.' not in module.name:  # env.py runs only under Alembic\n"
        "            importlib.import_module(module.name)",
    )
    missing = everywhere - seen_by_migrations
    assert not missing, f"tables defined in modules orchestrator/storage/database.py does not import: {sorted(missing)}"


def _tables_after(*imports: str) -> list[set[str]]:
    """The tables registered after each piece of code, each in a fresh interpreter (in parallel)."""
    report = "\nimport json, sqlmodel\nprint(json.dumps(sorted(sqlmodel.SQLModel.metadata.tables)))"
    processes = [
        subprocess.Popen([sys.executable, "-c", code + report], stdout=subprocess.PIPE, text=True) for code in imports
    ]
    outputs = [process.communicate(timeout=60)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes)
    return [set(json.loads(output.strip().splitlines()[-1])) for output in outputs]
