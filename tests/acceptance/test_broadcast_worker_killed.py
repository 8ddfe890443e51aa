"""A broadcast survives SIGKILL: two `orchestrator worker` processes feed and send one
broadcast through the fake Twilio (its own process, witness log on disk); one is killed
mid-broadcast and restarted. Every recipient got exactly one SMS, per the fake's log."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from orchestrator.broadcasts.loader import from_body
from orchestrator.broadcasts.service import act, create_draft
from orchestrator.events.ingest import ingest
from orchestrator.events.schemas import IdentifyCall
from orchestrator.startup import build_runtime
from orchestrator.storage.broadcast_models import Broadcast
from tests.acceptance.processes import FakeTwilioProcess, all_messages, start_orchestrator, stop, worker_env
from tests.conftest import _reset, make_settings

RECIPIENTS = 1000


def phone(n: int) -> str:
    return f"+3361{n:07d}"


async def schedule_broadcast(database_url: str) -> None:
    runtime = await build_runtime(make_settings(database_url, simulated_clock=False))
    try:
        calls = [
            IdentifyCall(userId=f"fr{n}", traits={"phone": phone(n), "sms_opt_in": True}) for n in range(RECIPIENTS)
        ]
        now = runtime.clock.now()
        loaded = from_body(
            {
                "id": "flash-sale",
                "audience": {"user_ids": [f"fr{n}" for n in range(RECIPIENTS)]},
                "channel": "sms",
                "template": "black-friday-sms",
                "vars": {"discount_code": "FLASH15"},
                "schedule": {"at": (now - timedelta(minutes=1)).isoformat()},
            }
        )
        async with runtime.sessions() as session, session.begin():
            await ingest(session, runtime, calls)
            await create_draft(session, loaded, now)
            await act(session, "flash-sale", "schedule", now)
    finally:
        await runtime.aclose()


async def broadcast_state(database_url: str) -> str:
    runtime = await build_runtime(make_settings(database_url, simulated_clock=False))
    try:
        async with runtime.sessions() as session:
            return (await session.exec(sa.select(Broadcast.state).where(Broadcast.id == "flash-sale"))).scalar_one()
    finally:
        await runtime.aclose()


@pytest.mark.timeout(300)
async def test_every_recipient_gets_exactly_one_sms_when_a_worker_is_killed_mid_broadcast(postgres_database, tmp_path):
    await _reset(postgres_database)
    await schedule_broadcast(postgres_database)
    log = tmp_path / "twilio.jsonl"
    twilio = FakeTwilioProcess(log, postgres_database)
    env = worker_env(
        postgres_database,
        ORCHESTRATOR_SMS_PROVIDER="twilio",
        ORCHESTRATOR_TWILIO_API_BASE_URL=twilio.url,
        ORCHESTRATOR_EMAIL_PROVIDER="local",
        ORCHESTRATOR_WHATSAPP_PROVIDER="local",
        ORCHESTRATOR_BROADCAST_POLL_SECONDS="0.2",
        ORCHESTRATOR_BROADCAST_BATCH_SIZE="50",  # many small transactions: the kill lands between or inside one
        ORCHESTRATOR_RECONCILE_AFTER_SECONDS="2",
        ORCHESTRATOR_RECONCILE_RESEND_AFTER_SECONDS="5",
        ORCHESTRATOR_RECONCILE_RETRY_SECONDS="1",
        ORCHESTRATOR_RECONCILE_INTERVAL_SECONDS="0.5",
        ORCHESTRATOR_REPORTS_DIR=str(tmp_path / "no-reports"),
    )
    texts = lambda: log.read_text().splitlines() if log.exists() else []  # noqa: E731
    workers = [start_orchestrator("worker", env, log=tmp_path / f"worker-{n}.log") for n in range(2)]
    try:
        deadline = time.monotonic() + 120
        while len(texts()) < RECIPIENTS // 4:
            assert time.monotonic() < deadline, "the broadcast did not start sending"
            await asyncio.sleep(0.05)
        workers[0].send_signal(signal.SIGKILL)  # mid-broadcast: recipients left to make, messages in flight
        workers[0].wait(10)
        killed_at = len(texts())
        workers[0] = start_orchestrator("worker", env, log=tmp_path / "worker-0-restarted.log")
        deadline = time.monotonic() + 180
        while await broadcast_state(postgres_database) != "done":
            assert time.monotonic() < deadline, "the broadcast did not finish"
            await asyncio.sleep(0.5)
    finally:
        for worker in workers:
            stop(worker)
        twilio.stop()

    received = Counter(json.loads(line)["to"] for line in texts())
    rows = [row for row in await all_messages(postgres_database) if row.journey_id == "broadcast:flash-sale"]
    print(f"\n{killed_at} SMS at the kill; {len(received)} numbers reached; {Counter(r.status for r in rows)}")
    assert killed_at < RECIPIENTS  # the kill came mid-broadcast
    assert [number for number, times in received.items() if times > 1] == []  # never twice
    assert set(received) == {phone(n) for n in range(RECIPIENTS)}  # everyone once
    assert len(rows) == RECIPIENTS == len({row.send_key for row in rows})
    assert {row.status for row in rows} <= {"sent", "delivered"}
