"""Overview: sends, deliveries and failures per channel over time, and the seed KPIs."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi import APIRouter
from fastapi.responses import Response

from orchestrator.console.api_client import ApiRefused
from orchestrator.console.context import ConsoleDep, refusal_page

router = APIRouter()

DEFAULT_DAYS = 14


def period(console_, since: str | None, until: str | None) -> tuple[date, date]:
    """[since, until] as whole UTC days; the last fortnight by the service's clock by default."""
    today = console_.request.app.state.runtime.clock.now().date()
    end = date.fromisoformat(until) if until else today
    start = date.fromisoformat(since) if since else end - timedelta(days=DEFAULT_DAYS - 1)
    return start, end


@router.get("/")
async def overview(
    console_: ConsoleDep, since: str | None = None, until: str | None = None, journey: str | None = None
) -> Response:
    try:
        start, end = period(console_, since, until)
    except ValueError:
        start, end = period(console_, None, None)
    bounds = {"from": start.isoformat(), "to": (end + timedelta(days=1)).isoformat(), "journey": journey}
    try:
        series = await console_.api.get("/v1/kpis", [*bounds.items(), ("group_by", "channel"), ("group_by", "day")])
        totals = await console_.api.get("/v1/kpis", [*bounds.items(), ("include", "customers")])
        journeys = await console_.api.get("/v1/journeys")
    except ApiRefused as error:
        return refusal_page(console_, error)
    days = [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]
    chart = {"days": days, "channels": {}}
    for row in series["rows"]:
        channel = chart["channels"].setdefault(
            row["channel"], {m: [0] * len(days) for m in ("sent", "delivered", "failed")}
        )
        if row["day"] in days:
            for measure in ("sent", "delivered", "failed"):
                channel[measure][days.index(row["day"])] = row[measure]
    total = totals["rows"][0] if totals["rows"] else None
    return console_.render(
        "overview.html",
        chart=chart,
        total=total,
        customers=totals.get("customers"),
        lift=totals.get("lift"),
        start=start,
        end=end,
        journey=journey,
        journeys=[j["id"] for j in journeys],
    )
