"""A scheduled report e-mail reaches a real SMTP server (aiosmtpd) once per period with two
`orchestrator worker` processes running on one PostgreSQL database.

The workers run on a simulated clock (`ORCHESTRATOR_SIMULATED_CLOCK_START`): the first
period is due when they start. For the second period both are stopped and started again a
day later on that clock, as a deploy the next morning would; a running worker's simulated
clock does not move by itself.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from orchestrator.fakes.server import free_port
from tests.acceptance.processes import start_orchestrator, stop, worker_env
from tests.conftest import START, _reset
from tests.reports.test_delivery import Inbox

REPORT = """\
name: Daily KPIs
recipients: [ceo@example.com]
schedule: {every: day, at: "08:00", timezone: Europe/Paris}
kpis: [sent, delivery_rate]
locale: en
"""
POLL_SECONDS = 0.2
SETTLE_POLLS = 25  # after the e-mail came, each worker polls this many more times: any duplicate would show


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def run_two_workers(env: dict[str, str], logs: Path, inbox: Inbox, expected: int) -> None:
    workers = [start_orchestrator("worker", env, log=logs / f"worker-{n}.log") for n in range(2)]
    try:
        wait_for(lambda: len(inbox.messages) >= expected, 60, f"{expected} report e-mail(s)")
        time.sleep(SETTLE_POLLS * POLL_SECONDS)
        assert all(worker.poll() is None for worker in workers), "a worker died: see " + str(logs)
    finally:
        for worker in workers:
            stop(worker)


@pytest.mark.timeout(180)
async def test_one_report_email_per_period_with_two_worker_processes(postgres_database, tmp_path: Path):
    await _reset(postgres_database)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "daily-kpis.yaml").write_text(REPORT)
    inbox, port = Inbox(), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:

        def env(start) -> dict[str, str]:
            return worker_env(
                postgres_database,
                ORCHESTRATOR_SIMULATED_CLOCK="true",
                ORCHESTRATOR_SIMULATED_CLOCK_START=start.isoformat(),
                ORCHESTRATOR_EMAIL_PROVIDER="smtp",
                ORCHESTRATOR_SMTP_HOST="127.0.0.1",
                ORCHESTRATOR_SMTP_PORT=str(port),
                ORCHESTRATOR_SMTP_STARTTLS="never",
                ORCHESTRATOR_SMS_PROVIDER="local",
                ORCHESTRATOR_WHATSAPP_PROVIDER="local",
                ORCHESTRATOR_REPORTS_DIR=str(tmp_path / "reports"),
                ORCHESTRATOR_REPORT_POLL_SECONDS=str(POLL_SECONDS),
            )

        run_two_workers(env(START), tmp_path, inbox, expected=1)
        assert [recipients for recipients, _ in inbox.messages] == [["ceo@example.com"]]
        assert "2026-03-01" in inbox.messages[0][1]["Subject"]  # the Paris day before START

        run_two_workers(env(START + timedelta(days=1)), tmp_path, inbox, expected=2)
        assert [recipients for recipients, _ in inbox.messages] == [["ceo@example.com"]] * 2
        assert "2026-03-02" in inbox.messages[1][1]["Subject"]  # the next period, once
    finally:
        smtp.stop()
