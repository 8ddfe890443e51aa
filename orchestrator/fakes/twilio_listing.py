"""Reading the fake's messages back as Twilio's Messages list does: filters and paging.

`GET /2010-04-01/Accounts/{sid}/Messages.json` with Twilio's query parameters:

- `To`, `From`: exact match on the stored address (`whatsapp:+1...` for WhatsApp).
- `DateSent`, `DateSent<`, `DateSent>`: the GMT date a message was *sent*, as `YYYY-MM-DD`
  or an ISO 8601 timestamp (what the Python SDK's `date_sent_before`/`_after` send); the
  date is what counts, both bounds included ("on or before", "on or after" midnight of the
  date, as Twilio's reference words it). A message not sent yet has no `date_sent` and
  does not match any DateSent filter.
- `PageSize` (default 50, at most 1000), `PageToken` (opaque, from `next_page_uri`),
  `Page` (the page number, echoed back).

Newest first, and the page envelope (`messages`, `next_page_uri`, `first_page_uri`, `page`,
`page_size`, `start`, `end`, `uri`, `previous_page_uri`), so the SDK's own `list`, `stream`
and `page` methods walk it exactly as they walk Twilio.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

from orchestrator.fakes.twilio_rules import ApiError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
FILTERS = ("To", "From", "DateSent", "DateSent<", "DateSent>")


def parse_day(value: str) -> date | None:
    try:
        return (
            datetime.fromisoformat(value.replace("Z", "+00:00")).date() if "T" in value else date.fromisoformat(value)
        )
    except ValueError:
        return None


def sent_day(resource: Mapping[str, Any]) -> date | None:
    return parsedate_to_datetime(resource["date_sent"]).date() if resource.get("date_sent") else None


def matches(resource: Mapping[str, Any], query: Mapping[str, str], days: Mapping[str, date]) -> bool:
    if "To" in query and resource["to"] != query["To"]:
        return False
    if "From" in query and resource["from"] != query["From"]:
        return False
    if not days:
        return True
    day = sent_day(resource)
    if day is None:
        return False
    return (
        ("DateSent" not in days or day == days["DateSent"])
        and ("DateSent<" not in days or day <= days["DateSent<"])
        and ("DateSent>" not in days or day >= days["DateSent>"])
    )


def list_page(
    newest_first: Iterable[Mapping[str, Any]], query: Mapping[str, str], list_uri: str
) -> dict[str, Any] | ApiError:
    """One page of the messages that match `query`; `newest_first` holds every candidate."""
    days: dict[str, date] = {}
    for name in ("DateSent", "DateSent<", "DateSent>"):
        if name in query:
            day = parse_day(query[name])
            if day is None:
                return ApiError(400, 20001, f"Invalid {name}: {query[name]}")
            days[name] = day
    try:
        page_size = int(query.get("PageSize", DEFAULT_PAGE_SIZE))
        page_number = int(query.get("Page", 0))
    except ValueError:
        return ApiError(400, 20001, "PageSize and Page must be integers")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        return ApiError(400, 20001, f"PageSize must be between 1 and {MAX_PAGE_SIZE}")
    after_sid = query.get("PageToken", "").removeprefix("PA") or None
    page: list[Mapping[str, Any]] = []
    more = False
    skipping = after_sid is not None
    for resource in newest_first:
        if skipping:  # the token names the last message of the previous page
            skipping = resource["sid"] != after_sid
            continue
        if not matches(resource, query, days):
            continue
        if len(page) == page_size:
            more = True
            break
        page.append(resource)
    filters = {name: query[name] for name in FILTERS if name in query}

    def uri(**extra) -> str:
        return f"{list_uri}?{urlencode({**filters, 'PageSize': page_size, **extra})}"

    start = page_number * page_size
    return {
        "messages": list(page),
        "page": page_number,
        "page_size": page_size,
        "start": start,
        "end": start + max(len(page) - 1, 0),
        "uri": uri(Page=page_number),
        "first_page_uri": uri(Page=0),
        "previous_page_uri": None if page_number == 0 else uri(Page=page_number - 1),
        "next_page_uri": uri(Page=page_number + 1, PageToken="PA" + page[-1]["sid"]) if more and page else None,
    }
