"""Liveness never touches the database; readiness answers 503 with a reason when it is gone."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from orchestrator.api.app import create_app
from orchestrator.api.health import database_problem
from orchestrator.fakes.server import free_port


def unreachable_engine(dialect: str):
    if dialect == "sqlite":  # a file in a directory that does not exist (and cannot be made)
        return create_async_engine("sqlite+aiosqlite:////proc/no-such-directory/orchestrator.db")
    return create_async_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone")  # nothing listens


async def test_live_and_ready_with_a_working_database(client):
    assert (await client.get("/health/live")).json() == {"status": "alive"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


async def test_ready_fails_and_live_succeeds_when_the_database_is_unreachable(runtime):
    broken = dataclasses.replace(runtime, engine=unreachable_engine(runtime.engine.dialect.name))
    app = create_app(runtime.settings, run_worker=False, runtime=broken)
    app.state.runtime = broken
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            started = time.monotonic()
            ready = await http.get("/health/ready")
            assert time.monotonic() - started < 5
            assert ready.status_code == 503
            assert ready.json()["status"] == "unavailable"
            assert ready.json()["reason"].startswith("database unreachable: OperationalError")
            assert (await http.get("/health/live")).status_code == 200
    finally:
        await broken.engine.dispose()


async def test_a_database_that_never_answers_times_out():
    """A server that accepts the connection and then says nothing, like a hung database."""

    async def silent(reader, writer):
        await reader.read()  # until the client gives up

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    engine = create_async_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/hung")
    try:
        started = time.monotonic()
        assert await database_problem(engine, timeout=0.3) == "database did not answer within 0.3 s"
        assert time.monotonic() - started < 2
    finally:
        await engine.dispose()
        server.close()
