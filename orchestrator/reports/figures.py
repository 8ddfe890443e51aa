"""A report's figures for a period: its KPIs in total and the daily sent/delivered series,
from the same KPI services the API's `GET /v1/kpis` answers with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.kpis.customers import customer_kpis
from orchestrator.kpis.report import message_kpis
from orchestrator.kpis.scope import KpiScope
from orchestrator.reports.format import CUSTOMER_KPIS, ReportFile

PERCENT_KPIS = {
    "delivery_rate",
    "open_rate",
    "click_rate",
    "bounce_rate",
    "reply_rate",
    "opt_out_rate",
    "conversion_rate",
    "retention_rate",
}


@dataclass(frozen=True)
class Figure:
    kpi: str
    value: float | int | None

    @property
    def shown(self) -> str:
        """As people read it in a mail: 12.3%, 1,234, 56.70, or – when there is no denominator."""
        if self.value is None:
            return "–"
        if self.kpi in PERCENT_KPIS:
            return f"{self.value:.1f}%"
        if isinstance(self.value, float):
            return f"{self.value:,.2f}"
        return f"{self.value:,}"


@dataclass(frozen=True)
class ReportFigures:
    since: datetime
    until: datetime
    figures: list[Figure]
    days: list[dict[str, Any]]  # {"day", "sent", "delivered", "failed", "share"}: share = sent / busiest day


async def report_figures(
    session: AsyncSession, report: ReportFile, since: datetime, until: datetime, now: datetime
) -> ReportFigures:
    scope = KpiScope(journey=report.scope.journey, channel=report.scope.channel, since=since, until=until)
    total = (await message_kpis(session, scope)) or [{}]
    daily = await message_kpis(session, KpiScope(**{**vars(scope), "group_by": ("day",)}))
    values = dict(total[0])
    if any(kpi in CUSTOMER_KPIS for kpi in report.kpis):
        values.update(await customer_kpis(session, scope, now))
    by_day = {row["day"]: row for row in daily}
    # One bar per day of the period. The daily series comes from the KPI rollups, which are
    # UTC days: for a report in another time zone each bar is the UTC day of that date.
    first = (since + timedelta(hours=12)).date()  # the period's first local date, whatever the zone
    days = []
    for n in range(max(round((until - since).total_seconds() / 86400), 1)):
        label = (first + timedelta(days=n)).isoformat()
        row = by_day.get(label, {})
        days.append(
            {
                "day": label,
                "sent": row.get("sent", 0),
                "delivered": row.get("delivered", 0),
                "failed": row.get("failed", 0),
            }
        )
    busiest = max([d["sent"] for d in days] + [1])
    for d in days:
        d["share"] = round(100 * d["sent"] / busiest)
    return ReportFigures(since, until, [Figure(kpi, values.get(kpi)) for kpi in report.kpis], days)
