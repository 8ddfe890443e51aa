"""Messages: filter (channel, status, journey, template, customer), read failure reasons and provider codes, retry `unknown` and `failed`,
export what is shown as CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from orchestrator.console.api_client import ApiRefused
from orchestrator.console.context import ConsoleDep, CsrfChecked, refusal_page, same_site_path
from orchestrator.vocabulary import CHANNELS, MessageStatus

router = APIRouter()
PAGE = 100
RETRYABLE = (MessageStatus.unknown, MessageStatus.failed)
CSV_COLUMNS = (
    "id",
    "created_at",
    "sent_at",
    "journey_id",
    "step_id",
    "channel",
    "provider",
    "template",
    "locale",
    "to_address",
    "status",
    "status_reason",
    "error_code",
    "provider_message_id",
    "cost",
    "cost_currency",
    "segments",
    "attempts",
    "requeues",
)


@dataclass(frozen=True)
class MessageFilters:
    """What both the page and its CSV take from the query string: the same filters, the same page."""

    channel: str | None = None
    status: str | None = None
    journey: str | None = None
    template: str | None = None
    customer: str | None = None
    offset: int = 0

    def chosen(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (
                ("channel", self.channel),
                ("status", self.status),
                ("journey", self.journey),
                ("template", self.template),
                ("customer", self.customer),
            )
            if v
        }

    async def page(self, console_) -> dict:
        return await console_.api.get("/v1/messages", {**self.chosen(), "limit": PAGE, "offset": max(self.offset, 0)})


FiltersDep = Annotated[MessageFilters, Depends()]


@router.get("/messages")
async def messages(console_: ConsoleDep, filters: FiltersDep) -> Response:
    try:
        page = await filters.page(console_)
        journeys = await console_.api.get("/v1/journeys")
    except ApiRefused as error:
        return refusal_page(console_, error)
    return console_.render(
        "messages.html",
        page=page,
        filters=filters,
        query=urlencode(filters.chosen()),
        channels=CHANNELS,
        statuses=[s.value for s in MessageStatus],
        journeys=[j["id"] for j in journeys],
        retryable=RETRYABLE,
        may_retry=console_.session.may_write("admin"),
        page_size=PAGE,
    )


@router.get("/messages.csv")
async def messages_csv(console_: ConsoleDep, filters: FiltersDep) -> Response:
    """The page on screen, as CSV (the same filters and offset)."""
    try:
        page = await filters.page(console_)
    except ApiRefused as error:
        return refusal_page(console_, error)
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(page["items"])
    return console_.keep(
        Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="messages.csv"'},
        )
    )


@router.post("/messages/{message_id}/retry", dependencies=[CsrfChecked])
async def retry(message_id: int, console_: ConsoleDep) -> Response:
    try:
        await console_.api.post(f"/v1/messages/{message_id}/retry")
    except ApiRefused as error:
        return refusal_page(console_, error)
    return console_.back(
        same_site_path(console_.request.headers.get("referer"), "/messages", console_.request.url.netloc)
    )
