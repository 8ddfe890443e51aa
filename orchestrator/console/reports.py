"""Reports: each declared report's figures with a chart, its sends, and share links; and the
shared view itself (`/r/...`), which opens without a login and shows live figures."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from orchestrator.console.api_client import ApiRefused
from orchestrator.console.context import ConsoleDep, CsrfChecked, refusal_page, templates
from orchestrator.reports.figures import report_figures
from orchestrator.reports.links import LinkRefused, open_link

router = APIRouter()
WRITERS = ("admin", "marketer")


async def _page(console_, report_id: str, new_link: dict | None = None) -> Response:
    try:
        listed = await console_.api.get("/v1/reports")
        figures = await console_.api.get(f"/v1/reports/{report_id}/figures")
        deliveries = await console_.api.get(f"/v1/reports/{report_id}/deliveries", {"limit": 20})
        links = await console_.api.get(f"/v1/reports/{report_id}/links")
    except ApiRefused as error:
        return refusal_page(console_, error)
    report = next(r for r in listed["reports"] if r["id"] == report_id)
    return console_.render(
        "report.html",
        report=report,
        figures=figures,
        deliveries=deliveries,
        links=links,
        new_link=new_link,
        may_share=console_.session.may_write(*WRITERS),
    )


@router.get("/reports")
async def reports(console_: ConsoleDep) -> Response:
    try:
        listed = await console_.api.get("/v1/reports")
    except ApiRefused as error:
        return refusal_page(console_, error)
    return console_.render("reports.html", listed=listed)


@router.get("/reports/{report_id}")
async def report(report_id: str, console_: ConsoleDep) -> Response:
    return await _page(console_, report_id)


@router.post("/reports/{report_id}/links", dependencies=[CsrfChecked])
async def share(
    report_id: str,
    console_: ConsoleDep,
    expires_in_days: Annotated[int, Form(ge=1, le=365)] = 30,
    window_days: Annotated[int, Form(ge=1, le=365)] = 30,
) -> Response:
    try:
        link = await console_.api.post(
            f"/v1/reports/{report_id}/links", json={"expires_in_days": expires_in_days, "window_days": window_days}
        )
    except ApiRefused as error:
        return refusal_page(console_, error)
    return await _page(console_, report_id, new_link=link)


@router.post("/reports/{report_id}/links/{link_id}/revoke", dependencies=[CsrfChecked])
async def revoke(report_id: str, link_id: int, console_: ConsoleDep) -> Response:
    try:
        await console_.api.post(f"/v1/reports/links/{link_id}/revoke")
    except ApiRefused as error:
        return refusal_page(console_, error)
    return console_.back(f"/reports/{report_id}")


@router.get("/r/{token}", response_class=HTMLResponse)
async def shared(token: str, request: Request) -> Response:
    """Anyone with the link: read-only, no login, refused once expired or revoked."""
    runtime = request.app.state.runtime
    now = runtime.clock.now()
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
    async with runtime.sessions() as session:
        try:
            link = await open_link(session, runtime.settings.secret_key, token[:200], now)
        except LinkRefused as refused:
            return templates.TemplateResponse(
                request, "shared_report.html", {"refused": str(refused)}, status_code=404, headers=headers
            )
        report = runtime.reports.reports.get(link.report_id)
        if report is None:
            return templates.TemplateResponse(
                request,
                "shared_report.html",
                {"refused": "this report no longer exists"},
                status_code=404,
                headers=headers,
            )
        figures = await report_figures(session, report.definition, now - timedelta(days=link.window_days), now, now)
    return templates.TemplateResponse(
        request,
        "shared_report.html",
        {"refused": None, "report": report.definition, "figures": figures, "expires_at": link.expires_at},
        headers=headers,
    )
