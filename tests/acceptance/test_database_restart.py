"""Restart PostgreSQL under running workers: they reconnect and finish the work.

This restarts the machine's PostgreSQL cluster, which breaks anything else using it at that
moment (other test runs, a local service). So it runs only where that is expected: in CI
(`CI=true`) or when asked for with `ORCHESTRATOR_TEST_RESTART_POSTGRES=1`; otherwise it is
skipped, and the skip reason says how to enable it.
"""

from __future__ import annotations

import asyncio
import glob
import os
import subprocess
import time

import pytest
from sqlmodel import func, select

import tests.acceptance.test_workers_under_chaos as chaos
from orchestrator.startup import build_runtime
from orchestrator.storage.models import Enrollment, Message
from tests.acceptance.processes import start_orchestrator, stop, worker_env
from tests.acceptance.test_workers_under_chaos import enroll_everyone, unfinished
from tests.conftest import _reset, make_settings
from tests.providers import smtp_server

CUSTOMERS = 1500
OPT_IN_VARIABLE = "ORCHESTRATOR_TEST_RESTART_POSTGRES"


def restart_not_allowed(environ) -> str | None:
    """Why this run may not restart the machine's PostgreSQL, or None when it may."""
    if environ.get("CI", "").lower() == "true" or environ.get(OPT_IN_VARIABLE) == "1":
        return None
    return f"restarts this machine's PostgreSQL cluster; runs only in CI (CI=true) or with {OPT_IN_VARIABLE}=1"


pytestmark = [
    pytest.mark.skipif(restart_not_allowed(os.environ) is not None, reason=restart_not_allowed(os.environ) or ""),
    pytest.mark.alone,
]


def restart_postgres() -> None:
    versions = [os.path.basename(p) for p in glob.glob("/etc/postgresql/*")]
    if not versions:
        pytest.skip("no local PostgreSQL cluster to restart")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main", "restart"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    deadline = time.monotonic() + 60
    while subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode != 0:
        assert time.monotonic() < deadline, "PostgreSQL did not come back"
        time.sleep(0.2)


async def sent_count(database_url: str) -> int:
    runtime = await build_runtime(make_settings(database_url, simulated_clock=False))
    try:
        async with runtime.sessions() as session:
            return (await session.exec(select(func.count()).select_from(Message).where(Message.status == "sent"))).one()
    finally:
        await runtime.aclose()


@pytest.mark.timeout(300)
async def test_workers_carry_on_after_a_database_restart(postgres_database, tmp_path, monkeypatch):
    await _reset(postgres_database)
    monkeypatch.setattr(chaos, "CUSTOMERS", CUSTOMERS)
    await enroll_everyone(postgres_database)
    with smtp_server() as (inbox, smtp_port):
        env = worker_env(
            postgres_database,
            ORCHESTRATOR_EMAIL_PROVIDER="smtp",
            ORCHESTRATOR_SMTP_PORT=str(smtp_port),
            ORCHESTRATOR_SMTP_STARTTLS="never",
            ORCHESTRATOR_SMS_PROVIDER="local",
            ORCHESTRATOR_WHATSAPP_PROVIDER="local",
            ORCHESTRATOR_RECONCILE_AFTER_SECONDS="10",
        )
        workers = [start_orchestrator("worker", env, log=tmp_path / f"worker-{n}.log") for n in range(2)]
        try:
            deadline = time.monotonic() + 120
            while await sent_count(postgres_database) < 200:
                assert time.monotonic() < deadline, "the workers never got going"
                await asyncio.sleep(0.5)
            restart_postgres()
            deadline = time.monotonic() + 180
            while await unfinished(postgres_database):
                assert time.monotonic() < deadline, "the workers did not carry on after the restart"
                assert all(w.poll() is None for w in workers), "a worker died with the database"
                await asyncio.sleep(1.0)
        finally:
            for worker in workers:
                stop(worker)
    runtime = await build_runtime(make_settings(postgres_database, simulated_clock=False))
    try:
        async with runtime.sessions() as session:
            statuses = dict((await session.exec(select(Message.status, func.count()).group_by(Message.status))).all())
            enrollments = dict(
                (await session.exec(select(Enrollment.status, func.count()).group_by(Enrollment.status))).all()
            )
            sent_email_ids = set(
                (
                    await session.exec(
                        select(Message.provider_message_id).where(Message.channel == "email", Message.status == "sent")
                    )
                ).all()
            )
    finally:
        await runtime.aclose()
    print(f"\nafter the restart: messages {statuses}, enrollments {enrollments}")
    assert "active" not in enrollments
    assert set(statuses) <= {"sent", "skipped", "unknown"}
    emails = [(m["To"], m["Subject"]) for m in inbox.messages]
    assert len(emails) == len(set(emails))  # no e-mail reached the server twice
    assert sent_email_ids <= {m["Message-ID"] for m in inbox.messages}  # every sent one arrived
