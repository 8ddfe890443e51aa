"""E-mail each report once per period to each recipient, however many workers run.

Each worker tick: (1) every report whose period is due gets one `queued` row per recipient,
`INSERT … ON CONFLICT DO NOTHING` on (report, period start, recipient), so a second worker
adds nothing; (2) queued rows are claimed with one conditional UPDATE (`queued` → `sending`)
and committed before the provider is called, as journey sends are; (3) the answer is
recorded. A provider that refused for a transient reason gets the row back to `queued` with a
backoff; an answer that never came leaves it `unknown`, never resent blindly.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col, select

from orchestrator.channels.base import OutboundMessage, Outcome
from orchestrator.clock import utc
from orchestrator.engine.retry import MAX_ATTEMPTS, backoff_delay
from orchestrator.reports.figures import report_figures
from orchestrator.reports.loader import LoadedReport
from orchestrator.reports.periods import latest_due_period
from orchestrator.runtime import Runtime
from orchestrator.storage.queries import insert_ignoring_conflict
from orchestrator.storage.report_models import ReportDelivery
from orchestrator.templating.render import RenderError, render_message
from orchestrator.vocabulary import Channel

log = logging.getLogger("orchestrator.reports")
TEMPLATE = "report-email"
CLAIM_SIZE = 20


async def queue_due_reports(runtime: Runtime) -> int:
    """One `queued` row per recipient of every report whose latest period is due; returns how many are new."""
    now, created = runtime.clock.now(), 0
    async with runtime.sessions() as session, session.begin():
        for report in runtime.reports.reports.values():
            start, end = latest_due_period(report.definition.schedule, now)
            for recipient in report.definition.recipients:
                inserted = await insert_ignoring_conflict(
                    session,
                    ReportDelivery,
                    dict(
                        report_id=report.id,
                        report_version=report.version,
                        period_start=start,
                        period_end=end,
                        recipient=recipient,
                        status="queued",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    ),
                    ["report_id", "period_start", "recipient"],
                )
                created += inserted is not None
    return created


async def _claim(runtime: Runtime, now: datetime) -> list[ReportDelivery]:
    table = ReportDelivery.__table__
    async with runtime.sessions() as session, session.begin():
        due = (
            select(ReportDelivery.id)
            .where(ReportDelivery.status == "queued", col(ReportDelivery.next_attempt_at) <= now)
            .order_by(col(ReportDelivery.id))
            .limit(CLAIM_SIZE)
        )
        # The status condition makes the claim atomic: of two workers, one UPDATE takes a row.
        rows = (
            (
                await session.exec(
                    sa.update(table)
                    .where(table.c.id.in_(due.scalar_subquery()), table.c.status == "queued")
                    .values(status="sending", attempts=table.c.attempts + 1)
                    .returning(*table.c)
                )
            )
            .mappings()
            .all()
        )
    return [ReportDelivery(**row) for row in rows]


async def send_claimed_reports(runtime: Runtime) -> int:
    now = runtime.clock.now()
    claimed = await _claim(runtime, now)
    for delivery in claimed:
        await _send(runtime, delivery, now)
    return len(claimed)


async def send_due_reports(runtime: Runtime) -> int:
    """The worker's job: queue what is due, then send what is queued."""
    await queue_due_reports(runtime)
    return await send_claimed_reports(runtime)


async def _send(runtime: Runtime, delivery: ReportDelivery, now: datetime) -> None:
    report = runtime.reports.reports.get(delivery.report_id)
    values: dict = {}
    try:
        if report is None:
            raise RenderError(f"report '{delivery.report_id}' is no longer declared")
        message = await _render(runtime, report, delivery, now)
        result = await runtime.channels.for_channel(Channel.email).send(message)
    except RenderError as error:
        values = dict(status="failed", error=str(error))
    else:
        if result.outcome == Outcome.accepted:
            values = dict(status="sent", sent_at=now, provider_message_id=result.provider_message_id, error=None)
        elif result.outcome == Outcome.transient_failure and delivery.attempts < MAX_ATTEMPTS:
            values = dict(
                status="queued",
                error=result.error_message,
                next_attempt_at=now + backoff_delay(delivery.attempts, result.retry_after_seconds),
            )
        elif result.outcome == Outcome.unknown:
            values = dict(status="unknown", error=result.error_message)
        else:
            values = dict(status="failed", error=result.error_message)
    if values.get("status") != "sent":
        log.warning(
            "report %s for %s: %s (%s)", delivery.report_id, delivery.recipient, values["status"], values["error"]
        )
    async with runtime.sessions() as session, session.begin():
        await session.exec(
            sa.update(ReportDelivery.__table__).where(ReportDelivery.__table__.c.id == delivery.id).values(**values)
        )


async def _render(runtime: Runtime, report: LoadedReport, delivery: ReportDelivery, now: datetime) -> OutboundMessage:
    since, until = utc(delivery.period_start), utc(delivery.period_end)
    zone = ZoneInfo(report.definition.schedule.timezone)
    async with runtime.sessions() as session:
        figures = await report_figures(session, report.definition, since, until, now)
    rendered = render_message(
        runtime.templates,
        TEMPLATE,
        report.definition.locale,
        {
            # The period's first and last day as its recipients count days: in the schedule's zone.
            "report": report.definition.model_dump(),
            "since": since.astimezone(zone).date().isoformat(),
            "until": (until.astimezone(zone) - timedelta(days=1)).date().isoformat(),
            "figures": [{"kpi": f.kpi, "value": f.shown} for f in figures.figures],
            "days": figures.days,
            "console_url": runtime.settings.public_base_url + f"/reports/{report.id}",
        },
    )
    return OutboundMessage(
        send_key=f"report:{report.id}:{since.isoformat()}:{delivery.recipient}",
        channel=Channel.email,
        to=delivery.recipient,
        body=rendered.body,
        subject=rendered.subject,
        html=rendered.html,
        marketing=False,
    )
