"""Four worker processes on one PostgreSQL take thousands of customers through the launch
journeys while being SIGKILLed at random; the providers' own logs are the witness.

Afterwards: every enrollment has finished, every message row is final, every sent message
reached its provider exactly once, nothing reached a provider twice, and no SMS or WhatsApp
message is left `unknown`: the reconciler asked the fake Twilio about every send a kill cut
off, adopting what it had and resending what it never got. E-mail goes through SMTP, which
cannot be asked: a kill in the middle of an SMTP transaction still leaves `unknown` (counted).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import func, select

from orchestrator.clock import SimulatedClock
from orchestrator.events.ingest import ingest
from orchestrator.events.schemas import IdentifyCall, TrackCall
from orchestrator.startup import build_runtime
from orchestrator.storage.models import Enrollment, Message
from orchestrator.vocabulary import EnrollmentStatus
from tests.acceptance.processes import FakeTwilioProcess, all_messages, start_orchestrator, stop, worker_env
from tests.conftest import _reset, make_settings
from tests.providers import smtp_server

# 20,000 in the documented full run (see docs/architecture.md); fewer keeps the suite well under its time budget.
CUSTOMERS = int(os.environ.get("ORCHESTRATOR_CHAOS_CUSTOMERS", "4000"))
WORKERS = 4
KILLS = 8


def midday_zone() -> str:
    """A time zone where it is about noon now: the workers run on the real clock, and quiet
    hours (21:00-08:00 in the customer's zone) must not hold the SMS whenever the suite runs."""
    offset = (12 - datetime.now(timezone.utc).hour + 12) % 24 - 12  # -12..11 hours from UTC
    return "Etc/GMT" + (f"{-offset:+d}" if offset else "")  # Etc/GMT-3 is UTC+3


def customer_calls(i: int, rng: random.Random) -> list:
    traits = {
        "email": f"c{i}@example.com",
        "phone": f"+1415{i:07d}",
        "locale": rng.choice(["en", "fr", "es", "zh-Hant"]),
        "timezone": midday_zone(),
    }
    traits["sms_opt_in"] = rng.random() < 0.6
    traits["whatsapp_opt_in"] = rng.random() < 0.3
    return [
        IdentifyCall(userId=f"c{i}", traits=traits),
        TrackCall(userId=f"c{i}", event="Signed Up"),
        TrackCall(userId=f"c{i}", event="Cart Abandoned", properties={"cart_value": 50}),
    ]


async def enroll_everyone(database_url: str) -> None:
    """Events dated ten days ago: every wait in the launch journeys (the longest, post-purchase's
    second code, comes 7 days after the order) is already over, so the
    worker processes (on the real clock) have all the work due at once."""
    start = datetime.now(timezone.utc) - timedelta(days=10)
    clock = SimulatedClock(start.replace(hour=10, minute=0))
    runtime = await build_runtime(make_settings(database_url), clock=clock)
    rng = random.Random(42)
    try:
        for first in range(0, CUSTOMERS, 500):
            calls = [call for i in range(first, min(first + 500, CUSTOMERS)) for call in customer_calls(i, rng)]
            async with runtime.sessions() as session, session.begin():
                await ingest(session, runtime, calls)
        clock.advance(timedelta(minutes=30))  # a third order before the cart reminder
        orders = [
            TrackCall(userId=f"c{i}", event="Order Completed", properties={"order_id": f"o{i}", "revenue": 40})
            for i in range(0, CUSTOMERS, 3)
        ]
        for first in range(0, len(orders), 1000):
            async with runtime.sessions() as session, session.begin():
                await ingest(session, runtime, orders[first : first + 1000])
    finally:
        await runtime.aclose()


async def unfinished(database_url: str) -> int:
    runtime = await build_runtime(make_settings(database_url, simulated_clock=False))
    try:
        async with runtime.sessions() as session:
            active = (
                await session.exec(
                    select(func.count()).select_from(Enrollment).where(Enrollment.status == EnrollmentStatus.active)
                )
            ).one()
            pending = (
                await session.exec(
                    select(func.count()).select_from(Message).where(Message.status.in_(["queued", "sending"]))
                )
            ).one()
            # Until the reconcile window has passed for them, sends Twilio can be asked about.
            pending += (
                await session.exec(
                    select(func.count())
                    .select_from(Message)
                    .where(Message.status == "unknown", Message.channel.in_(["sms", "whatsapp"]))
                )
            ).one()
            return active + pending
    finally:
        await runtime.aclose()


@pytest.mark.timeout(600)
async def test_exactly_once_with_four_workers_killed_at_random(postgres_database, tmp_path):
    await _reset(postgres_database)
    await enroll_everyone(postgres_database)
    twilio = FakeTwilioProcess(tmp_path / "twilio.jsonl", postgres_database)
    rng = random.Random(7)
    kills = 0
    with smtp_server() as (inbox, smtp_port):
        env = worker_env(
            postgres_database,
            ORCHESTRATOR_SMS_PROVIDER="twilio",
            ORCHESTRATOR_WHATSAPP_PROVIDER="twilio",
            ORCHESTRATOR_TWILIO_API_BASE_URL=twilio.url,
            ORCHESTRATOR_EMAIL_PROVIDER="smtp",
            ORCHESTRATOR_SMTP_PORT=str(smtp_port),
            ORCHESTRATOR_SMTP_STARTTLS="never",
            ORCHESTRATOR_RECONCILE_AFTER_SECONDS="10",
            ORCHESTRATOR_RECONCILE_RESEND_AFTER_SECONDS="25",
            ORCHESTRATOR_RECONCILE_RETRY_SECONDS="3",
            ORCHESTRATOR_RECONCILE_INTERVAL_SECONDS="1",
            # Journey sends only: scheduled reports would reach the SMTP witness too.
            ORCHESTRATOR_REPORTS_DIR=str(tmp_path / "no-reports"),
        )
        workers = [start_orchestrator("worker", env, log=tmp_path / f"worker-{n}.log") for n in range(WORKERS)]
        try:
            deadline = time.monotonic() + 480
            while await unfinished(postgres_database):
                assert time.monotonic() < deadline, "the workers did not finish"
                await asyncio.sleep(rng.uniform(1.0, 3.0))
                if kills < KILLS:
                    victim = rng.randrange(WORKERS)
                    workers[victim].send_signal(signal.SIGKILL)
                    workers[victim].wait(10)
                    kills += 1
                    workers[victim] = start_orchestrator("worker", env, log=tmp_path / f"worker-{victim}.log")
        finally:
            for worker in workers:
                stop(worker)
            twilio.stop()
        emails = list(inbox.messages)

    texts = [json.loads(line) for line in (tmp_path / "twilio.jsonl").read_text().splitlines()]
    rows = await all_messages(postgres_database)
    statuses = Counter(row.status for row in rows)
    unknown = [row for row in rows if row.status == "unknown"]
    reconciled = sum(1 for row in rows if "reconciler" in (row.status_reason or ""))
    print(
        f"\n{len(rows)} messages {dict(statuses)}; {kills} workers killed; {len(unknown)} ambiguous (unknown: "
        f"{dict(Counter(row.channel for row in unknown))}); {reconciled} found at Twilio by the reconciler"
    )

    assert kills == KILLS
    # Nothing queued, sending or failed. `delivered`: a send found at Twilio took Twilio's status.
    assert set(statuses) <= {"sent", "delivered", "skipped", "unknown"}, statuses
    assert [row.send_key for row in unknown if row.channel != "email"] == []  # Twilio was asked about each

    # What each provider received, keyed the way it would show a duplicate.
    received = Counter(
        [("email", mail["To"], mail["Subject"]) for mail in emails]
        + [
            (entry["channel"], entry["to"].removeprefix("whatsapp:"), entry["body"] or entry["content_sid"])
            for entry in texts
        ]
    )
    assert [key for key, times in received.items() if times > 1] == []  # never twice

    by_provider_id = {mail["Message-ID"] for mail in emails} | {entry["sid"] for entry in texts}
    sent = [row for row in rows if row.status in ("sent", "delivered")]
    assert all(row.provider_message_id in by_provider_id for row in sent)  # every sent one arrived
    # Whatever arrived is accounted for: a sent row, or an ambiguous one left by a kill.
    assert len(received) == len(sent) + sum(1 for row in unknown if _arrived(row, received))
    assert len({row.send_key for row in rows}) == len(rows)


def _arrived(row: Message, received: Counter) -> bool:
    if row.channel == "email":
        return ("email", row.to_address, row.subject) in received
    content = row.template_metadata.get("content_sid") if row.channel == "whatsapp" else row.body
    return (row.channel, row.to_address, content) in received
