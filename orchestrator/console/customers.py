"""Customers: find them by userId, e-mail or phone, and see their profile, consents with evidence, journeys and timeline."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from orchestrator.console.api_client import ApiRefused
from orchestrator.console.context import ConsoleDep, refusal_page

router = APIRouter()
SHOWN = 50


@router.get("/customers")
async def customers(console_: ConsoleDep, q: str | None = None) -> Response:
    """Found by `GET /v1/customers?q=`: a userId prefix, an e-mail address or a phone number."""
    q, found, error, more = (q or "").strip(), [], None, False
    if q:
        try:
            page = await console_.api.get("/v1/customers", {"q": q, "limit": SHOWN})
        except ApiRefused as refused:
            return refusal_page(console_, refused)
        found = page["items"]
        if not found:
            error = f"no customer whose userId starts with '{q}' or whose e-mail or phone is '{q}'"
        more = page["next_cursor"] is not None
    return console_.render("customers.html", q=q, found=found, error=error, more=more)


@router.get("/customers/{user_id}")
async def customer(user_id: str, console_: ConsoleDep) -> Response:
    try:
        profile = await console_.api.get(f"/v1/customers/{user_id}")
        consents = await console_.api.get(f"/v1/customers/{user_id}/consents")
        timeline = await console_.api.get(f"/v1/customers/{user_id}/timeline", {"limit": 200})
    except ApiRefused as error:
        return refusal_page(console_, error)
    return console_.render("customer.html", profile=profile, consents=consents, timeline=timeline)
