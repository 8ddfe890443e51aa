"""What every console request starts from: the user's session, the API client, rendering.

Before the first API key exists the API is open, and so is the console, under a banner that
says so; from the first key on, a login with a key of role admin, marketer or ops is needed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Form, Header, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from orchestrator.console.api_client import ApiRefused, ConsoleApi
from orchestrator.console.session import COOKIE, SESSION_HOURS, ConsoleSession, csrf_matches, seal, unseal
from orchestrator.web.access import api_is_closed

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["pct"] = lambda v: "–" if v is None else f"{v:.1f}%"
templates.env.filters["num"] = lambda v: "–" if v is None else (f"{v:,.2f}" if isinstance(v, float) else f"{v:,}")


class LoginRequired(Exception):
    """Raised anywhere in a console request: the app answers with a redirect to /login."""


@dataclass
class Console:
    request: Request
    session: ConsoleSession
    api: ConsoleApi
    open_api: bool  # no key exists yet: anyone reaching the service may use it
    new_cookie: str | None = None

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        response = templates.TemplateResponse(
            self.request,
            template,
            dict(context, session=self.session, open_api=self.open_api, path=self.request.url.path),
            status_code=status_code,
        )
        return self.keep(response)

    def keep(self, response: Response) -> Response:
        if self.new_cookie:
            set_session_cookie(self.request, response, self.new_cookie)
        return response

    def back(self, url: str) -> Response:
        return self.keep(RedirectResponse(url, status_code=303))


def set_session_cookie(request: Request, response: Response, value: str) -> None:
    runtime = request.app.state.runtime
    response.set_cookie(
        COOKIE,
        value,
        max_age=SESSION_HOURS * 3600,
        httponly=True,
        samesite="lax",
        secure=runtime.settings.public_base_url.startswith("https://"),
        path="/",
    )


async def console(request: Request) -> AsyncIterator[Console]:
    runtime = request.app.state.runtime
    session = unseal(runtime.settings.secret_key, request.cookies.get(COOKIE))
    new_cookie = None
    async with runtime.sessions() as db:
        open_api = not await api_is_closed(request, runtime, db)
    if session is None or (session.key is None and not open_api):
        if not open_api:
            raise LoginRequired()
        new_cookie, session = seal(runtime.settings.secret_key, None, "anyone", "admin")
    async with ConsoleApi(request.app, session.key) as api:
        yield Console(request, session, api, open_api, new_cookie)


ConsoleDep = Annotated[Console, Depends(console)]


async def checked_form(
    request: Request, csrf: Annotated[str | None, Form()] = None, x_csrf_token: Annotated[str | None, Header()] = None
) -> None:
    """Every console write carries the session's CSRF token (form field or htmx header)."""
    runtime = request.app.state.runtime
    session = unseal(runtime.settings.secret_key, request.cookies.get(COOKIE))
    if session is None or not csrf_matches(session, csrf or x_csrf_token):
        raise HTTPException(403, "the form expired or did not come from this console: reload the page and try again")


CsrfChecked = Depends(checked_form)


def same_site_path(url: str | None, default: str, host: str) -> str:
    """Where to go back to: a page of this console, never another site (no open redirect)."""
    parts = urlsplit(url or "")
    if parts.netloc not in ("", host) or not parts.path.startswith("/") or parts.path.startswith("//"):
        return default
    return parts.path + (f"?{parts.query}" if parts.query else "")


def refusal_page(console_: Console, error: ApiRefused) -> Response:
    if error.status == 401:  # the key was revoked since login
        raise LoginRequired()
    return console_.render("error.html", status_code=error.status if error.status < 500 else 502, error=error)
