"""Shared fixtures: real databases (SQLite and PostgreSQL), a simulated clock, the app.

The integration tier runs every test once per database. PostgreSQL comes from
`ORCHESTRATOR_TEST_POSTGRES_URL` (default: the local server, database `test`); each run
works in its own freshly created database. Without PostgreSQL those tests skip locally
but fail in CI (`CI=true`), where a missing database is an error, not a pass.
"""

from __future__ import annotations

import gc
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psycopg
import pytest

from orchestrator.clock import SimulatedClock
from orchestrator.config import PROJECT_ROOT, Settings
from orchestrator.engine.loop import WorkerLoop
from orchestrator.startup import build_runtime
from tests.fresh_schema import FreshSchemas

POSTGRES_ADMIN_URL = os.environ.get("ORCHESTRATOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
START = datetime(2026, 3, 2, 17, 0, tzinfo=timezone.utc)  # a Monday morning in California (09:00), evening in Europe


def _postgres_available() -> str | None:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as error:
        return str(error)


@pytest.fixture(scope="session")
def postgres_database():
    """A database of our own for this test session, dropped at the end."""
    problem = _postgres_available()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {problem}")
        pytest.skip(f"PostgreSQL not reachable: {problem}")
    name = f"orchestrator_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orchestrator.db'}"
    return request.getfixturevalue("postgres_database")


def make_settings(database_url: str, **overrides) -> Settings:
    values = dict(
        database_url=database_url,
        journeys_dir=PROJECT_ROOT / "journeys",
        templates_dir=PROJECT_ROOT / "templates",
        simulated_clock=True,
        email_provider="local",
        sms_provider="local",
        whatsapp_provider="local",
        api_key_cache_seconds=0,  # keys take effect at once; tests/api/test_auth.py covers the cache
        # Uncapped unless a test says otherwise: most tests send a customer several marketing
        # messages in one simulated day; tests/engine/test_frequency_caps.py sets its own caps.
        frequency_caps_file=PROJECT_ROOT / "policies" / "none.yaml",
    )
    values.update(overrides)
    return Settings(**values)


FRESH_SCHEMAS = FreshSchemas()


async def _reset(url: str) -> None:
    """Leave the database at `url` empty and fully migrated, as every test starts: migrated
    for real once per session, then copied (SQLite) or emptied (PostgreSQL); see
    tests/fresh_schema.py. (A test that needs no tables at all calls `drop_schema`.)"""
    await FRESH_SCHEMAS.reset(url)


@pytest.fixture
async def runtime(database_url: str):
    await _reset(database_url)
    runtime = await build_runtime(make_settings(database_url), clock=SimulatedClock(START))
    yield runtime
    await runtime.aclose()


@pytest.fixture
async def client(runtime):
    from orchestrator.api.app import create_app

    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    app.state.runtime = runtime
    # The loop is not started: tests drain it explicitly (or through clock/advance).
    app.state.worker_loop = WorkerLoop(runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http


async def refresh_kpis_as_the_worker_does(client) -> None:
    """Run the worker's KPI rollup job now. `GET /v1/kpis` never refreshes the rollups, so a
    test that changed data behind the API's back reads after this, as a report read one
    refresh interval later would."""
    await client._transport.app.state.worker_loop.refresh_kpi_rollups()


@pytest.fixture
def drain(client):
    """Run all due work now, as the worker would on its next tick."""
    loop = client._transport.app.state.worker_loop
    return loop.drain


# --- tiers ------------------------------------------------------------------------------

TIERS = ("unit", "integration", "acceptance")
DATABASE_FIXTURES = frozenset({"database_url", "postgres_database", "runtime", "client"})


def tier_of(item: pytest.Item) -> str:
    """acceptance: starts real processes (tests/acceptance/); integration: uses a database
    fixture; unit: the rest. A test or module marked with a tier keeps it."""
    marked = [tier for tier in TIERS if item.get_closest_marker(tier)]
    if marked:
        return marked[0]
    if "acceptance" in item.path.relative_to(Path(__file__).parent).parts[:1]:
        return "acceptance"
    if DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return "integration"
    return "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = tier_of(item)
        if not item.get_closest_marker(tier):
            item.add_marker(tier)
    select_phase(config, items, os.environ.get(PHASE_VARIABLE, ""))


# --- phases (./test.sh runs the suite in two) ----------------------------------------------

PHASE_VARIABLE = "ORCHESTRATOR_TEST_PHASE"


def in_phase(item: pytest.Item, phase: str) -> bool:
    """`shared`: the tests that can run beside others (test.sh runs them on several pytest-xdist
    workers); `alone`: those marked `alone` (they restart the machine's PostgreSQL, which would
    break every other test's connections), run afterwards by themselves; anything else: all."""
    alone = item.get_closest_marker("alone") is not None
    return {"shared": not alone, "alone": alone}.get(phase, True)


def select_phase(config: pytest.Config, items: list[pytest.Item], phase: str) -> None:
    kept = [item for item in items if in_phase(item, phase)]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if not in_phase(item, phase)])
        items[:] = kept


# --- the garbage collector ------------------------------------------------------------------


def restore_collector(threshold: tuple[int, ...], frozen: int) -> bool:
    """Put the garbage collector back to `threshold` with `frozen` objects frozen; say whether
    it had been changed."""
    changed = (gc.get_threshold(), gc.get_freeze_count()) != (threshold, frozen)
    if gc.get_freeze_count() != frozen:
        gc.unfreeze()
    gc.set_threshold(*threshold)
    return changed


@pytest.fixture(autouse=True)
def collector_untouched():
    """Fails a test that leaves the garbage collector frozen or retuned (as a standalone fake's
    start-up does), after putting it back, so later tests do not run, or fail, on its state."""
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    yield
    if restore_collector(threshold, frozen):
        pytest.fail(
            "this test left the garbage collector frozen or with other thresholds; "
            "restore it (see the `collector_restored` fixture)"
        )


@pytest.fixture
def collector_restored():
    """For tests that run code which tunes the collector for a process of its own."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
