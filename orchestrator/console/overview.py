"""Overview: sends, deliveries and failures per channel and hour or day of a chosen time
zone, and the seed KPIs, for a chosen range and journey; the website KPIs beside them
(visits, bounce rate, time on site, visits per channel)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter
from fastapi.responses import Response

from orchestrator.console.api_client import ApiRefused
from orchestrator.console.context import ConsoleDep, refusal_page

router = APIRouter()

DEFAULT_DAYS = 14
GRANULARITIES = ("day", "hour")
ZONES = ("UTC", "America/Los_Angeles", "America/New_York", "Europe/London", "Europe/Paris", "Asia/Tokyo")


def period(console_, since: str | None, until: str | None, zone: ZoneInfo) -> tuple[date, date]:
    """[since, until] as whole days of `zone`; the last fortnight by the service's clock by default."""
    today = console_.request.app.state.runtime.clock.now().astimezone(zone).date()
    end = date.fromisoformat(until) if until else today
    start = date.fromisoformat(since) if since else end - timedelta(days=DEFAULT_DAYS - 1)
    return start, end


def _zone(name: str) -> ZoneInfo:
    """The zone to lay the dates out in; an unknown one is laid out in UTC and passed on to
    the API as typed, whose 422 names it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _midnight(day: date, zone: ZoneInfo) -> str:
    return datetime.combine(day, time(), zone).isoformat()


def _labels(buckets: list[str], granularity: str) -> list[str]:
    if granularity == "day":
        return [bucket[:10] for bucket in buckets]
    labels = [bucket[5:16].replace("T", " ") for bucket in buckets]
    # The hour a clock goes back shows twice: tell the two apart by their offset.
    return [f"{label} ({bucket[19:]})" if labels.count(label) > 1 else label for label, bucket in zip(labels, buckets)]


@router.get("/")
async def overview(
    console_: ConsoleDep,
    since: str | None = None,
    until: str | None = None,
    journey: str | None = None,
    granularity: str = "day",
    zone: str = "UTC",
) -> Response:
    tz = _zone(zone)
    try:
        start, end = period(console_, since, until, tz)
    except ValueError:
        start, end = period(console_, None, None, tz)
    bounds = {"from": _midnight(start, tz), "to": _midnight(end + timedelta(days=1), tz), "journey": journey}
    # Concurrently: the page waits for the slowest call, not for their sum. Every call is
    # let finish (return_exceptions) so none is left running when the page answers a refusal.
    answers = await asyncio.gather(
        console_.api.get("/v1/kpis/series", {**bounds, "granularity": granularity, "zone": zone}),
        console_.api.get("/v1/kpis", [*bounds.items(), ("include", "customers")]),
        console_.api.get("/v1/journeys"),
        console_.api.get("/v1/kpis/site", list(bounds.items())),
        console_.api.get("/v1/kpis/site", [*bounds.items(), ("group_by", "channel")]),
        return_exceptions=True,
    )
    for answer in answers:
        if isinstance(answer, ApiRefused):
            return refusal_page(console_, answer)
        if isinstance(answer, BaseException):
            raise answer
    series, totals, journeys, site_total, site_channels = answers
    chart = {"labels": _labels(series["buckets"], series["granularity"]), "channels": series["channels"]}
    total = totals["rows"][0] if totals["rows"] else None
    channels = sorted(site_channels["rows"], key=lambda row: -row["visits"])
    most = max((row["visits"] for row in channels), default=0)
    visits_per_channel = [{**row, "share": 100 * row["visits"] / most if most else 0} for row in channels]
    return console_.render(
        "overview.html",
        chart=chart,
        total=total,
        customers=totals.get("customers"),
        lift=totals.get("lift"),
        site=site_total["rows"][0],
        visits_per_channel=visits_per_channel,
        start=start,
        end=end,
        journey=journey,
        journeys=[j["id"] for j in journeys],
        granularity=series["granularity"],
        granularities=GRANULARITIES,
        zone=zone,
        zones=ZONES,
    )
