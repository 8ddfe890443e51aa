"""Scheduled KPI reports: what is declared, their figures, their sends, and share links."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field
from sqlmodel import col, select

from orchestrator.api.parameters import Moment
from orchestrator.clock import UtcDatetime, utc
from orchestrator.reports.figures import report_figures
from orchestrator.reports.links import LinkRefused, create_link, list_links, revoke_link
from orchestrator.reports.loader import LoadedReport
from orchestrator.reports.periods import latest_due_period
from orchestrator.storage.report_models import ReportDelivery
from orchestrator.web.dependencies import RuntimeDep, SessionDep
from orchestrator.web.responses import NOT_FOUND

router = APIRouter(prefix="/v1/reports", tags=["reports"])


class ReportSummary(BaseModel):
    id: str
    name: str | None
    version: str
    file: str
    recipients: list[str]
    schedule: dict[str, Any]
    scope: dict[str, Any]
    kpis: list[str]
    locale: str
    latest_due_period: tuple[UtcDatetime, UtcDatetime] = Field(description="[start, end) of the period last due")


class ReportList(BaseModel):
    reports: list[ReportSummary]
    errors: list[str] = Field(description="Files that did not load, as file:line: key: problem")


class FigureOut(BaseModel):
    kpi: str
    value: float | int | None
    shown: str


class ReportFiguresOut(BaseModel):
    report: str
    since: UtcDatetime
    until: UtcDatetime
    figures: list[FigureOut]
    days: list[dict[str, Any]]


class DeliveryOut(BaseModel):
    period_start: UtcDatetime
    period_end: UtcDatetime
    recipient: str
    status: str
    attempts: int
    error: str | None
    sent_at: UtcDatetime | None


class NewLink(BaseModel):
    expires_in_days: int = Field(default=30, ge=1, le=365)
    window_days: int = Field(default=30, ge=1, le=365, description="The link shows the last N days, as of each view")


class LinkOut(BaseModel):
    id: int
    report: str
    url: str | None = Field(default=None, description="Shown once, when the link is created")
    window_days: int
    created_by: str | None
    created_at: UtcDatetime
    expires_at: UtcDatetime
    revoked_at: UtcDatetime | None


def _report(runtime, report_id: str) -> LoadedReport:
    report = runtime.reports.reports.get(report_id)
    if report is None:
        raise HTTPException(404, f"no report '{report_id}' (declared reports are files under reports/)")
    return report


@router.get("", response_model=ReportList)
async def list_reports(runtime: RuntimeDep) -> ReportList:
    now = runtime.clock.now()
    return ReportList(
        reports=[
            ReportSummary(
                id=r.id,
                name=r.definition.name,
                version=r.version,
                file=str(r.path),
                recipients=r.definition.recipients,
                schedule=r.definition.schedule.model_dump(),
                scope=r.definition.scope.model_dump(),
                kpis=r.definition.kpis,
                locale=r.definition.locale,
                latest_due_period=latest_due_period(r.definition.schedule, now),
            )
            for r in runtime.reports.reports.values()
        ],
        errors=[str(e) for e in runtime.reports.errors],
    )


@router.get("/{report_id}/figures", response_model=ReportFiguresOut, responses=NOT_FOUND)
async def get_figures(
    report_id: str,
    session: SessionDep,
    runtime: RuntimeDep,
    since: Annotated[Moment | None, Query(alias="from")] = None,
    until: Annotated[Moment | None, Query(alias="to")] = None,
) -> ReportFiguresOut:
    """The report's KPIs for [`from`, `to`), by default its latest due period (what the last e-mail showed)."""
    report = _report(runtime, report_id)
    now = runtime.clock.now()
    default_since, default_until = latest_due_period(report.definition.schedule, now)
    since, until = utc(since) if since else default_since, utc(until) if until else default_until
    if since >= until:
        raise HTTPException(422, "`from` must be before `to`")
    figures = await report_figures(session, report.definition, since, until, now)
    return ReportFiguresOut(
        report=report.id,
        since=since,
        until=until,
        days=figures.days,
        figures=[FigureOut(kpi=f.kpi, value=f.value, shown=f.shown) for f in figures.figures],
    )


@router.get("/{report_id}/deliveries", response_model=list[DeliveryOut], responses=NOT_FOUND)
async def list_deliveries(
    report_id: str, session: SessionDep, runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[DeliveryOut]:
    _report(runtime, report_id)
    rows = (
        await session.exec(
            select(ReportDelivery)
            .where(ReportDelivery.report_id == report_id)
            .order_by(col(ReportDelivery.period_start).desc(), col(ReportDelivery.id))
            .limit(limit)
        )
    ).all()
    return [DeliveryOut.model_validate(row, from_attributes=True) for row in rows]


def _link_out(link, url: str | None = None) -> LinkOut:
    return LinkOut(
        id=link.id,
        report=link.report_id,
        url=url,
        window_days=link.window_days,
        created_by=link.created_by,
        created_at=link.created_at,
        expires_at=link.expires_at,
        revoked_at=link.revoked_at,
    )


@router.post("/{report_id}/links", response_model=LinkOut, status_code=201, responses=NOT_FOUND)
async def new_link(
    report_id: str, body: NewLink, request: Request, session: SessionDep, runtime: RuntimeDep
) -> LinkOut:
    """A signed, read-only, expiring link to the report's live figures; the URL is shown only now."""
    _report(runtime, report_id)
    caller = getattr(request.state, "caller", None)
    async with session.begin():
        link, path = await create_link(
            session,
            runtime.settings.secret_key,
            report_id,
            expires_in_days=body.expires_in_days,
            window_days=body.window_days,
            created_by=getattr(caller, "key_name", None),
            now=runtime.clock.now(),
        )
    return _link_out(link, runtime.settings.public_base_url + path)


@router.get("/{report_id}/links", response_model=list[LinkOut], responses=NOT_FOUND)
async def get_links(report_id: str, session: SessionDep, runtime: RuntimeDep) -> list[LinkOut]:
    _report(runtime, report_id)
    return [_link_out(link) for link in await list_links(session, report_id)]


@router.post("/links/{link_id}/revoke", response_model=LinkOut, responses=NOT_FOUND)
async def revoke(link_id: Annotated[int, Path(ge=1, le=2**62)], session: SessionDep, runtime: RuntimeDep) -> LinkOut:
    async with session.begin():
        try:
            link = await revoke_link(session, link_id, runtime.clock.now())
        except LinkRefused as refused:
            raise HTTPException(404, str(refused)) from None
    return _link_out(link)
