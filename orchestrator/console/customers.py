"""Customers: find one, and see their profile, consents with evidence, journeys and timeline."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from orchestrator.console.api_client import ApiRefused
from orchestrator.console.context import ConsoleDep, refusal_page

router = APIRouter()


@router.get("/customers")
async def customers(console_: ConsoleDep, q: str | None = None) -> Response:
    found, error = [], None
    if q:
        try:  # a userId first: support usually has it from the ticket
            found = [await console_.api.get(f"/v1/customers/{q.strip()}")]
        except ApiRefused as refused:
            if refused.status != 404:
                return refusal_page(console_, refused)
            error = f"no customer with userId '{q.strip()}'"
    return console_.render("customers.html", q=q or "", found=found, error=error)


@router.get("/customers/{user_id}")
async def customer(user_id: str, console_: ConsoleDep) -> Response:
    try:
        profile = await console_.api.get(f"/v1/customers/{user_id}")
        consents = await console_.api.get(f"/v1/customers/{user_id}/consents")
        timeline = await console_.api.get(f"/v1/customers/{user_id}/timeline", {"limit": 200})
    except ApiRefused as error:
        return refusal_page(console_, error)
    return console_.render("customer.html", profile=profile, consents=consents, timeline=timeline)
