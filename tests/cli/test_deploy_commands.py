"""`orchestrator api`, `migrate` and `makemigration`: what they run, with which settings."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from uvicorn.importer import import_from_string

from orchestrator.api import serving
from orchestrator.cli import main
from orchestrator.config import get_settings
from orchestrator.storage.database import create_engine
from orchestrator.storage.migrate import current_revisions, head_revisions


@pytest.fixture
def environment(monkeypatch, tmp_path):
    """Settings come from the environment here, as in a deployed process."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    for name in ("ORCHESTRATOR_HOST", "ORCHESTRATOR_PORT", "ORCHESTRATOR_PUBLIC_BASE_URL"):
        # `api` writes these into os.environ; setting first makes monkeypatch restore them
        # (it forgets a variable that was absent when deleted).
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    for provider in ("EMAIL", "SMS", "WHATSAPP"):
        monkeypatch.setenv(f"ORCHESTRATOR_{provider}_PROVIDER", "local")
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_api_runs_the_factory_under_uvicorn_with_its_workers(environment):
    configs = []
    environment.setattr(serving, "run_uvicorn", configs.append)

    assert main(["api", "--host", "0.0.0.0", "--port", "9001", "--workers", "3", "--no-access-log"]) == 0

    [config] = configs
    assert (config.app, config.factory, config.host, config.port, config.workers, config.access_log) == (
        "orchestrator.api.app:create_api_app",
        True,
        "0.0.0.0",
        9001,
        3,
        False,
    )
    assert callable(import_from_string(config.app))
    # Worker processes read their settings from the environment: the address must be there.
    assert get_settings().host == "0.0.0.0" and get_settings().public_base_url == "http://0.0.0.0:9001"


async def test_the_api_factory_builds_an_app_without_a_worker_loop(environment):
    app = import_from_string("orchestrator.api.app:create_api_app")()
    assert isinstance(app, FastAPI)
    async with app.router.lifespan_context(app):
        assert app.state.worker_loop is None
        assert app.state.runtime.settings.database_url == get_settings().database_url


def test_migrate_upgrades_the_configured_database_to_head(environment, capsys):
    assert main(["migrate"]) == 0
    assert ", ".join(sorted(head_revisions())) in capsys.readouterr().out

    async def revisions():
        engine = create_engine(get_settings().database_url)
        async with engine.connect() as connection:
            found = await connection.run_sync(current_revisions)
        await engine.dispose()
        return found

    assert asyncio.run(revisions()) == head_revisions()


def test_makemigration_writes_the_revision_that_make_migration_returns(monkeypatch, tmp_path, capsys):
    """Only the wiring: a real run would write into orchestrator/storage/migrations/versions/
    whenever the models have changed (make_migration itself is tested in tests/storage)."""
    import orchestrator.storage.drift as drift

    asked = []

    async def fake_make_migration(message, *, database_url=None):
        asked.append((message, database_url))
        return tmp_path / "0042_add_nickname.py" if message == "add nickname" else None

    monkeypatch.setattr(drift, "make_migration", fake_make_migration)

    assert main(["makemigration", "add nickname", "--database-url", "postgresql://db/x"]) == 0
    assert f"wrote {tmp_path / '0042_add_nickname.py'}" in capsys.readouterr().out
    assert main(["makemigration", "nothing"]) == 0
    assert "no changes" in capsys.readouterr().out
    assert asked == [("add nickname", "postgresql://db/x"), ("nothing", None)]
