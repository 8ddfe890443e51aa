"""Kill a worker process between the provider's accept and our commit.

The next worker asks Twilio, finds the message there and adopts its SID: the message is
`sent`, never resent. The fake Twilio's own log is the witness.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from orchestrator.clock import SimulatedClock
from orchestrator.events.ingest import ingest
from orchestrator.events.schemas import IdentifyCall, TrackCall
from orchestrator.fakes.server import serve_in_thread
from orchestrator.fakes.twilio import FakeTwilioSettings, create_fake_twilio_app
from orchestrator.startup import build_runtime
from tests.acceptance.processes import all_messages
from tests.conftest import _reset, make_settings

ANSWER_DELAY = 8.0  # seconds the provider's answer is held back after it accepted


def answer_late(app):
    """The provider accepts (and logs) at once, but its HTTP answer comes late."""

    async def delayed(scope, receive, send):
        async def late_send(event):
            creating = scope.get("method") == "POST" and scope["path"].endswith("/Messages.json")
            if event["type"] == "http.response.start" and creating:
                await asyncio.sleep(ANSWER_DELAY)
            await send(event)

        await app(scope, receive, late_send)

    return delayed


def start_worker(database_url: str, twilio_url: str, **extra) -> subprocess.Popen:
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        ORCHESTRATOR_SMS_PROVIDER="twilio",
        ORCHESTRATOR_TWILIO_API_BASE_URL=twilio_url,
        ORCHESTRATOR_EMAIL_PROVIDER="local",
        ORCHESTRATOR_WHATSAPP_PROVIDER="local",
        ORCHESTRATOR_WORKER_POLL_SECONDS="0.2",
        ORCHESTRATOR_PUBLIC_BASE_URL="http://127.0.0.1:9",
        **extra,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.timeout(90)
async def test_interrupted_send_is_found_at_the_provider_and_not_resent(postgres_database):
    await _reset(postgres_database)
    # Yesterday at 10:00 UTC: the one-hour wait is over, and the SMS falls outside quiet hours
    # (21:00-08:00) whatever the time of day the test runs at.
    yesterday_morning = (datetime.now(timezone.utc) - timedelta(days=1)).replace(hour=10, minute=0)
    setup = await build_runtime(make_settings(postgres_database), clock=SimulatedClock(yesterday_morning))
    async with setup.sessions() as session, session.begin():
        await ingest(
            session,
            setup,
            [
                IdentifyCall(userId="kim", traits={"phone": "+14155550199", "sms_opt_in": True}),
                TrackCall(userId="kim", event="Cart Abandoned"),
            ],
        )
    token = setup.settings.fake_twilio_auth_token  # what the workers will read from the database
    await setup.aclose()

    fake = create_fake_twilio_app(FakeTwilioSettings(status_latency_seconds=0, auth_token=token))
    workers = []
    with serve_in_thread(answer_late(fake)) as twilio_url:
        witnessed = lambda: httpx.get(f"{twilio_url}/_admin/messages").json()
        try:
            first = start_worker(postgres_database, twilio_url)
            workers.append(first)
            wait_for(witnessed, 30, "the provider to accept the SMS")
            first.send_signal(signal.SIGKILL)  # after the accept, before the answer reached us
            first.wait(10)
            [row] = await all_messages(postgres_database)
            assert row.status == "sending" and row.provider_message_id is None

            second = start_worker(
                postgres_database,
                twilio_url,
                ORCHESTRATOR_RECONCILE_AFTER_SECONDS="1",
                ORCHESTRATOR_RECONCILE_INTERVAL_SECONDS="0.5",
            )
            workers.append(second)
            deadline = time.monotonic() + 30
            while (row := (await all_messages(postgres_database))[0]).status == "sending":
                assert time.monotonic() < deadline, "the interrupted send was never reconciled"
                await asyncio.sleep(0.2)
            [accepted] = witnessed()
            assert (row.status, row.provider_message_id) == ("delivered", accepted["sid"])  # and its status
            assert "found by the reconciler" in row.status_reason
            await asyncio.sleep(1.0)  # give a wrong worker the chance to resend
            assert len(witnessed()) == 1
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.terminate()
                    worker.wait(10)
