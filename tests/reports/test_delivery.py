"""Scheduled reports reach a real SMTP server (aiosmtpd) once per period and recipient, with
two workers ticking at the same moment, on both databases."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import select

from orchestrator.clock import SimulatedClock
from orchestrator.fakes.server import free_port
from orchestrator.reports.delivery import send_due_reports
from orchestrator.startup import build_runtime
from orchestrator.storage.report_models import ReportDelivery
from tests.conftest import START, make_settings

REPORT = """\
name: Daily SMS
recipients: [ceo@example.com, cmo@example.com]
schedule: {every: day, at: "08:00", timezone: Europe/Paris}
kpis: [sent, delivery_rate, revenue, nps]
locale: fr
"""


class Inbox:
    def __init__(self) -> None:
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default)))
        return "250 2.0.0 queued"


@pytest.fixture
def inbox():
    handler, port = Inbox(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    handler.port = port
    yield handler
    controller.stop()


@pytest.fixture
async def two_workers(runtime, database_url, inbox, tmp_path: Path):
    """Two worker runtimes on one database (the `runtime` fixture has just migrated it clean)."""
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "daily-sms.yaml").write_text(REPORT)
    settings = make_settings(
        database_url, email_provider="smtp", smtp_port=inbox.port, reports_dir=tmp_path / "reports"
    )
    workers = [await build_runtime(settings, clock=SimulatedClock(START)) for _ in range(2)]
    yield workers
    for worker in workers:
        await worker.aclose()


async def test_each_period_is_mailed_once_per_recipient_with_two_workers(two_workers, inbox):
    for _ in range(3):  # both workers tick together, three times
        await asyncio.gather(*(send_due_reports(worker) for worker in two_workers))
    assert sorted(to for recipients, _ in inbox.messages for to in recipients) == ["ceo@example.com", "cmo@example.com"]
    [(_, mail), _] = inbox.messages
    assert mail["Subject"] == "Daily SMS : du 2026-03-01 au 2026-03-01"
    html = mail.get_body(("html",)).get_content()
    text = mail.get_body(("plain",)).get_content()
    assert "Envoyés" in text and "Taux de délivrabilité" in html  # the report's locale
    assert "<script" not in html.lower() and "<svg" not in html.lower()  # what mail clients render
    for worker in two_workers:  # the next day: the next period, once again
        worker.clock.advance(timedelta(days=1))
    for _ in range(2):
        await asyncio.gather(*(send_due_reports(worker) for worker in two_workers))
    assert len(inbox.messages) == 4
    assert inbox.messages[-1][1]["Subject"] == "Daily SMS : du 2026-03-02 au 2026-03-02"


async def test_a_refused_recipient_fails_alone_and_is_recorded(two_workers, inbox):
    inbox_handle = inbox.handle_DATA

    async def refuse_the_ceo(server, session, envelope):
        if "ceo@example.com" in envelope.rcpt_tos:
            return "554 5.7.1 rejected"
        return await inbox_handle(server, session, envelope)

    inbox.handle_DATA = refuse_the_ceo
    await send_due_reports(two_workers[0])
    assert [to for recipients, _ in inbox.messages for to in recipients] == ["cmo@example.com"]
    async with two_workers[0].sessions() as session:
        rows = {r.recipient: r for r in (await session.exec(select(ReportDelivery))).all()}
    assert rows["ceo@example.com"].status == "failed" and "rejected" in rows["ceo@example.com"].error
    assert rows["cmo@example.com"].status == "sent"
