"""KPIs over HTTP: `GET /v1/kpis`, `GET /v1/journeys/{journey_id}/stats`, and
`POST /v1/kpis/rebuild`.

Thin: parse the query, let `orchestrator.kpis` count in the database, answer. Reads only
read: the worker keeps the daily rollups current (`WorkerLoop.refresh_kpi_rollups`, every
`kpi_rollup_refresh_seconds`), so a read takes no lock and writes nothing. Every ratio whose
denominator is 0 is null. The formulas are in the field descriptions (OpenAPI).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from orchestrator.api.parameters import Moment
from orchestrator.broadcasts.as_journey import broadcast_journey_id
from orchestrator.clock import UtcDatetime, utc
from orchestrator.kpis.customers import DEFAULT_ACTIVE_DAYS, DEFAULT_LIFESPAN_YEARS, customer_kpis
from orchestrator.kpis.funnel import journey_funnel
from orchestrator.kpis.lift import holdout_lift
from orchestrator.kpis.report import message_kpis
from orchestrator.kpis.rollup import rebuild_rollups
from orchestrator.kpis.schemas import CustomerKpis, HoldoutLift, JourneyStats, KpiRow
from orchestrator.kpis.scope import KpiScope
from orchestrator.web.dependencies import RuntimeDep, SessionDep
from orchestrator.web.responses import NOT_FOUND

router = APIRouter(prefix="/v1", tags=["kpis"])
Dimension = Literal["journey", "step", "channel", "template", "day"]


class KpiReport(BaseModel):
    group_by: list[Dimension]
    since: UtcDatetime | None = Field(description="`from`, inclusive; messages by creation time")
    until: UtcDatetime | None = Field(description="`to`, exclusive")
    rows: list[KpiRow]
    customers: CustomerKpis | None = Field(description="With `include=customers`: CLV, retention and NPS")
    lift: HoldoutLift | None = Field(description="Holdout lift of the selected journey; null without `journey`")


class Rebuilt(BaseModel):
    rebuilt: bool = True


def _period(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime | None]:
    since, until = (utc(since) if since else None), (utc(until) if until else None)
    if since and until and since >= until:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "to"),
                    "input": until.isoformat(),
                    "msg": "`from` must be before `to`",
                }
            ]
        )
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


@router.post("/kpis/rebuild", response_model=Rebuilt)
async def rebuild_kpi_rollups(runtime: RuntimeDep) -> Rebuilt:
    """Count the daily rollups again from all messages. The worker keeps them current on its
    own; this is for rows written with old timestamps (a backfill, a restored backup)."""
    await rebuild_rollups(runtime)
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
