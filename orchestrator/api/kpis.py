"""KPIs over HTTP: `GET /v1/kpis`, `GET /v1/kpis/series`, `GET /v1/kpis/site` (website visits),
`GET /v1/journeys/{journey_id}/stats`, and `POST /v1/kpis/rebuild`.

Thin: parse the query, let `orchestrator.kpis` count in the database, answer. Reads only
read: the worker keeps the daily rollups current (`WorkerLoop.refresh_kpi_rollups`, every
`kpi_rollup_refresh_seconds`), so a read takes no lock and writes nothing. Every ratio whose
denominator is 0 is null. The formulas are in the field descriptions (OpenAPI).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from orchestrator.api.parameters import Moment, Zone
from orchestrator.broadcasts.as_journey import broadcast_journey_id
from orchestrator.clock import UtcDatetime, utc
from orchestrator.kpis.customers import DEFAULT_ACTIVE_DAYS, DEFAULT_LIFESPAN_YEARS, customer_kpis
from orchestrator.kpis.funnel import journey_funnel
from orchestrator.kpis.lift import holdout_lift
from orchestrator.kpis.report import message_kpis
from orchestrator.kpis.rollup import rebuild_rollups
from orchestrator.kpis.schemas import CustomerKpis, HoldoutLift, JourneyStats, KpiRow, SiteKpiRow
from orchestrator.kpis.scope import KpiScope
from orchestrator.kpis.series import MAX_SPAN, Granularity, message_series
from orchestrator.kpis.site import SiteScope, site_kpis
from orchestrator.kpis.site_fold import rebuild_visits
from orchestrator.web.dependencies import RuntimeDep, SessionDep
from orchestrator.web.responses import NOT_FOUND

router = APIRouter(prefix="/v1", tags=["kpis"])
Dimension = Literal["journey", "step", "channel", "template", "day"]
SiteDimension = Literal["channel", "journey", "broadcast", "source", "day"]


class KpiReport(BaseModel):
    group_by: list[Dimension]
    since: UtcDatetime | None = Field(description="`from`, inclusive; messages by creation time")
    until: UtcDatetime | None = Field(description="`to`, exclusive")
    rows: list[KpiRow]
    customers: CustomerKpis | None = Field(description="With `include=customers`: CLV, retention and NPS")
    lift: HoldoutLift | None = Field(description="Holdout lift of the selected journey; null without `journey`")


class SiteKpiReport(BaseModel):
    group_by: list[SiteDimension]
    since: UtcDatetime | None = Field(description="`from`, inclusive; visits by start time")
    until: UtcDatetime | None = Field(description="`to`, exclusive")
    rows: list[SiteKpiRow]


class Rebuilt(BaseModel):
    rebuilt: bool = True


def _refuse(field: str, value: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("query", field), "input": value, "msg": message}])


def _period(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime | None]:
    since, until = (utc(since) if since else None), (utc(until) if until else None)
    if since and until and since >= until:
        raise _refuse("to", until.isoformat(), "`from` must be before `to`")
    return since, until


FromQuery = Annotated[Moment | None, Query(alias="from", description="Inclusive start (ISO-8601, UTC if no offset)")]
ToQuery = Annotated[Moment | None, Query(alias="to", description="Exclusive end (ISO-8601, UTC if no offset)")]


@router.get("/kpis", response_model=KpiReport)
async def get_kpis(
    session: SessionDep,
    runtime: RuntimeDep,
    journey: str | None = None,
    broadcast: Annotated[
        str | None, Query(description="A broadcast's messages: the same as `journey=broadcast:<id>`")
    ] = None,
    step: str | None = None,
    channel: str | None = None,
    template: str | None = None,
    since: FromQuery = None,
    until: ToQuery = None,
    group_by: Annotated[
        list[Dimension], Query(description="Repeatable: journey, step, channel, template, day (UTC)")
    ] = [],  # noqa: B006
    include: Annotated[
        list[Literal["customers"]],
        Query(
            description=(
                "`customers` adds customer-level figures (CLV, retention, NPS) from order events, scoped to the "
                "customers the filtered messages reached; they are counted live, so they cost more"
            )
        ),
    ] = [],  # noqa: B006
    lifespan_years: Annotated[
        float, Query(gt=0, le=100, description="Assumed customer lifespan for CLV")
    ] = DEFAULT_LIFESPAN_YEARS,
    active_days: Annotated[
        int, Query(ge=1, le=3650, description="A customer is active this long after an order (retention)")
    ] = DEFAULT_ACTIVE_DAYS,
) -> KpiReport:
    """Message KPIs per group, holdout lift for one journey, customer-level figures on request.

    Messages are those journey steps produced, created in [`from`, `to`); their later
    delivery, replies, opt-outs and conversions count with them. All rates are percentages;
    a ratio whose denominator is 0 is null. Each row's field descriptions give its formula.
    Whole days come from rollups the worker refreshes every `kpi_rollup_refresh_seconds`
    (30 s by default), so they may lag by that much.
    """
    since, until = _period(since, until)
    if broadcast is not None:
        if journey is not None and journey != broadcast_journey_id(broadcast):
            raise RequestValidationError(
                [
                    {
                        "type": "value_error",
                        "loc": ("query", "broadcast"),
                        "input": broadcast,
                        "msg": "give journey or broadcast, not both",
                    }
                ]
            )
        journey = broadcast_journey_id(broadcast)
    scope = KpiScope(
        journey=journey,
        step=step,
        channel=channel,
        template=template,
        since=since,
        until=until,
        group_by=tuple(dict.fromkeys(group_by)),
    )
    rows = await message_kpis(session, scope)
    customers = None
    if "customers" in include:
        customers = await customer_kpis(
            session, scope, runtime.clock.now(), lifespan_years=lifespan_years, active_days=active_days
        )
    lift = await holdout_lift(session, journey, since, until) if journey else None
    return KpiReport(group_by=list(scope.group_by), since=since, until=until, rows=rows, customers=customers, lift=lift)


class KpiSeries(BaseModel):
    granularity: Granularity
    zone: str
    since: UtcDatetime
    until: UtcDatetime
    buckets: list[datetime] = Field(description="Each bucket's start, as the zone's clock reads it (with its offset)")
    channels: dict[str, dict[str, list[int]]] = Field(
        description="channel → sent, delivered, failed → one count per bucket"
    )


@router.get("/kpis/series", response_model=KpiSeries)
async def get_kpi_series(
    session: SessionDep,
    since: Annotated[Moment, Query(alias="from", description="Inclusive start (ISO-8601, UTC if no offset)")],
    until: Annotated[Moment, Query(alias="to", description="Exclusive end (ISO-8601, UTC if no offset)")],
    granularity: Granularity = "day",
    zone: Annotated[Zone, Query(description="IANA time zone whose hours or days the buckets are")] = "UTC",
    journey: str | None = None,
) -> KpiSeries:
    """Sent, delivered and failed journey messages per channel and hour or day of `zone`,
    by creation time in [`from`, `to`). UTC days over whole UTC days come from the rollups
    (as fresh as the worker's last refresh); other buckets are counted from the messages."""
    since, until = _period(since, until)
    if until - since > MAX_SPAN[granularity]:
        raise _refuse(
            "to", until.isoformat(), f"at most {MAX_SPAN[granularity].days} days of {granularity}s per series"
        )
    spans, channels = await message_series(session, since, until, granularity, ZoneInfo(zone), journey)
    return KpiSeries(
        granularity=granularity,
        zone=zone,
        since=since,
        until=until,
        buckets=[span.label for span in spans],
        channels=channels,
    )


@router.get("/kpis/site", response_model=SiteKpiReport)
async def get_site_kpis(
    session: SessionDep,
    journey: str | None = None,
    channel: str | None = None,
    broadcast: str | None = None,
    source: str | None = None,
    since: FromQuery = None,
    until: ToQuery = None,
    group_by: Annotated[
        list[SiteDimension], Query(description="Repeatable: channel, journey, broadcast, source, day (UTC)")
    ] = [],  # noqa: B006
) -> SiteKpiReport:
    """Website KPIs from page and screen calls (docs/website-kpis.md): visits, visitors, site
    conversion rate, bounce rate, time on site and pages per visit, per group.

    Visits are those that started in [`from`, `to`). A visit from one of our tracked links is
    credited to its message's channel, journey and broadcast. The worker folds new page calls
    into visits every `kpi_rollup_refresh_seconds` (30 s by default), so figures lag by that much.
    """
    since, until = _period(since, until)
    scope = SiteScope(
        channel=channel,
        journey=journey,
        broadcast=broadcast,
        source=source,
        since=since,
        until=until,
        group_by=tuple(dict.fromkeys(group_by)),
    )
    rows = await site_kpis(session, scope)
    return SiteKpiReport(group_by=list(scope.group_by), since=since, until=until, rows=rows)


@router.post("/kpis/rebuild", response_model=Rebuilt)
async def rebuild_kpi_rollups(runtime: RuntimeDep) -> Rebuilt:
    """Count the daily rollups again from all messages. The worker keeps them current on its
    own; this is for rows written with old timestamps (a backfill, a restored backup). Visits
    are folded again from every page and screen call too."""
    await rebuild_rollups(runtime)
    await rebuild_visits(runtime)
    return Rebuilt()


@router.get("/journeys/{journey_id}/stats", response_model=JourneyStats, responses=NOT_FOUND)
async def get_journey_stats(
    journey_id: str, session: SessionDep, runtime: RuntimeDep, since: FromQuery = None, until: ToQuery = None
) -> JourneyStats:
    """The journey's funnel for enrollments that entered in [`from`, `to`): entries, each
    step in journey order (reached, sent, delivered, skipped by reason, conversions),
    exits by reason, and holdout lift."""
    since, until = _period(since, until)
    journey = runtime.catalog.current.get(journey_id)
    if journey is None:
        raise HTTPException(404, f"no journey '{journey_id}'")
    return await journey_funnel(session, journey, since, until)
