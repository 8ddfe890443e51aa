"""Log in with an API key, log out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from orchestrator.auth.keys import find_active_key
from orchestrator.console.context import set_session_cookie, templates
from orchestrator.console.session import CONSOLE_ROLES, COOKIE, seal

router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    return templates.TemplateResponse(request, "login.html", {"error": None})


@router.post("/login")
async def login(request: Request, key: Annotated[str, Form(max_length=200)]) -> Response:
    runtime = request.app.state.runtime
    async with runtime.sessions() as db:
        found = await find_active_key(db, key.strip())
    if found is None or found.role not in CONSOLE_ROLES:
        error = (
            f"this key has role '{found.role}', which is for applications; log in with an admin, marketer or ops key"
            if found
            else "unknown or revoked key"
        )
        return templates.TemplateResponse(request, "login.html", {"error": error}, status_code=401)
    cookie, _ = seal(runtime.settings.secret_key, key.strip(), found.name, found.role)
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(request, response, cookie)
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
