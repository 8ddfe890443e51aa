"""SIGKILL an API process while events pour in: every event that got a 2xx is stored."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest
from sqlmodel import col, select

from orchestrator.fakes.server import free_port
from orchestrator.startup import build_runtime
from orchestrator.storage.models import Event
from tests.acceptance.processes import start_orchestrator, stop, wait_until_up, worker_env
from tests.conftest import _reset, make_settings


async def send_until_killed(url: str, acknowledged: list[str], stop_sending: asyncio.Event, worker: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5.0) as client:
        n = 0
        while not stop_sending.is_set():
            message_id = f"w{worker}-{n}"
            n += 1
            try:
                response = await client.post(
                    "/v1/track", json={"userId": f"u{n % 50}", "event": "Product Viewed", "messageId": message_id}
                )
            except httpx.TransportError:
                return  # the process is gone
            if response.status_code == 200:
                acknowledged.append(message_id)


@pytest.mark.timeout(120)
async def test_every_acknowledged_event_survives_a_kill(postgres_database, tmp_path):
    await _reset(postgres_database)
    port = free_port()
    api = start_orchestrator("api", worker_env(postgres_database), "--port", str(port), log=tmp_path / "api.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/health/live", timeout=60)
        acknowledged: list[str] = []
        stop_sending = asyncio.Event()
        senders = [asyncio.create_task(send_until_killed(url, acknowledged, stop_sending, n)) for n in range(16)]
        for _ in range(600):  # until a few hundred are in, at most a minute
            if len(acknowledged) >= 300:
                break
            await asyncio.sleep(0.1)
        api.send_signal(signal.SIGKILL)  # mid-flight: some requests are being committed right now
        api.wait(10)
        stop_sending.set()
        await asyncio.gather(*senders)
    finally:
        stop(api)

    assert len(acknowledged) >= 300, "the load generator barely ran"
    runtime = await build_runtime(make_settings(postgres_database, simulated_clock=False))
    try:
        async with runtime.sessions() as session:
            stored = set(
                (await session.exec(select(Event.message_id).where(col(Event.message_id).in_(acknowledged)))).all()
            )
    finally:
        await runtime.aclose()
    missing = set(acknowledged) - stored
    print(f"\n{len(acknowledged)} events acknowledged before the kill; {len(missing)} missing")
    assert missing == set()
