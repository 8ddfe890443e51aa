"""Real processes for acceptance tests: workers, API servers, the fake Twilio; and what they left
in the database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlmodel import select

from orchestrator.fakes.server import free_port
from orchestrator.startup import build_runtime
from orchestrator.storage.models import Message
from tests.conftest import make_settings


def worker_env(database_url: str, **extra: str) -> dict[str, str]:
    return dict(
        os.environ,
        DATABASE_URL=database_url,
        ORCHESTRATOR_WORKER_POLL_SECONDS="0.2",
        ORCHESTRATOR_PUBLIC_BASE_URL="http://127.0.0.1:9",
        **extra,
    )


def start_orchestrator(command: str, env: dict[str, str], *args: str, log: Path | None = None) -> subprocess.Popen:
    output = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", command, *args],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
    )


def wait_until_up(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


class FakeTwilioProcess:
    """The fake Twilio in its own process, with its witness log on disk."""

    def __init__(self, log_path: Path, database_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        # Its auth token is the one the service keeps in its database, as in docker-compose.yml.
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator.fakes.twilio",
                "--port",
                str(self.port),
                "--log-path",
                str(log_path),
                "--status-latency",
                "0",
                "--no-status-callbacks",
                "--credentials-from-database",
            ],
            env=dict(os.environ, DATABASE_URL=database_url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_up(self.url + "/_admin/messages")

    def stop(self) -> None:
        stop(self.process)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


async def all_messages(database_url: str) -> list[Message]:
    """Every message row, read through a runtime of the test's own (the workers are other processes)."""
    runtime = await build_runtime(make_settings(database_url, simulated_clock=False))
    try:
        async with runtime.sessions() as session:
            return list((await session.exec(select(Message))).all())
    finally:
        await runtime.aclose()
