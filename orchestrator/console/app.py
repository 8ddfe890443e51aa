"""Mount the console on the service's app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from orchestrator.console import (
    broadcasts,
    conversations,
    customers,
    journeys,
    login,
    messages,
    overview,
    reports,
    segments,
)
from orchestrator.console.context import LoginRequired

STATIC = Path(__file__).parent / "static"


def mount_console(app: FastAPI) -> None:
    for module in (login, overview, journeys, broadcasts, messages, conversations, customers, segments, reports):
        app.include_router(module.router, include_in_schema=False)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)
