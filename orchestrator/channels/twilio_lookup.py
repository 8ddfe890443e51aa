"""Asking Twilio what became of a send, with the SDK's own list and fetch methods.

What we rely on in Twilio's Messages API (see docs/send-safety.md):
- The Message resource exists as soon as the create request is accepted (HTTP 201), and
  the Messages list can be filtered by `To` and `From`, newest first, paged with
  `PageSize`/`PageToken` through `next_page_uri`.
- We do not filter on `DateSent`: a message still queued at Twilio has no `date_sent` yet,
  so a DateSent filter could hide exactly the message we look for and turn "not sent yet"
  into "never received", which would send it twice. We page back by `date_created` instead
  and stop at the attempt's time (less a clock-skew margin).
- The resource carries no identifier of ours (no idempotency key, and the StatusCallback
  URL is not echoed back), so a send is matched on recipient, sender, time and the body we
  rendered, which is deterministic for a send key. A WhatsApp Content template's body is
  rendered by Twilio, so those match on recipient, sender and time only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from orchestrator.channels.base import Found, Lookup, ProviderRecord

PAGE_SIZE = 100
MAX_PAGES = 5  # more than 500 messages to one number since the attempt: inconclusive
# Our clock and Twilio's may disagree a little; a message created up to this much "before"
# the attempt was claimed may still be it.
CLOCK_SKEW = timedelta(minutes=2)
# Anything the network or Twilio can do to a read: none of it says the message is absent.
LOOKUP_ERRORS = (TwilioRestException, aiohttp.ClientError, TimeoutError, OSError)


def record_of(instance: Any) -> ProviderRecord:
    cost = currency = None
    if instance.price:  # negative: a charge
        cost, currency = abs(Decimal(instance.price)), instance.price_unit
    return ProviderRecord(
        provider_message_id=instance.sid,
        status=str(instance.status) if instance.status else "unknown",
        created_at=instance.date_created,
        error_code=str(instance.error_code) if instance.error_code else None,
        cost=cost,
        cost_currency=currency,
    )


async def find_message(
    client: Client, *, to: str, from_: str | None, body: str | None, attempted_at: datetime
) -> Lookup:
    """Outbound messages to `to` (from `from_`, with `body` when given) created since the
    attempt, oldest first; `not_found` only when the list was read back past the attempt."""
    earliest = attempted_at - CLOCK_SKEW
    filters: dict[str, Any] = {"to": to, "page_size": PAGE_SIZE}
    if from_:
        filters["from_"] = from_
    matches: list[ProviderRecord] = []
    try:
        page = await client.messages.page_async(**filters)
        for _ in range(MAX_PAGES):
            for instance in page:
                if instance.date_created is not None and instance.date_created < earliest:
                    return _answer(matches)  # newest first: everything further is older
                if str(instance.direction) == "outbound-api" and (body is None or instance.body == body):
                    matches.append(record_of(instance))
            page = await page.next_page_async()
            if page is None:
                return _answer(matches)
    except LOOKUP_ERRORS as error:
        return Lookup.unreachable(f"{type(error).__name__}: {error}")
    if matches:
        return _answer(matches)
    return Lookup.unreachable(f"more than {PAGE_SIZE * MAX_PAGES} messages to {to} since the attempt")


def _answer(matches: list[ProviderRecord]) -> Lookup:
    if not matches:
        return Lookup(Found.not_found)
    return Lookup(Found.found, records=tuple(reversed(matches)))


async def fetch_message(client: Client, sid: str) -> Lookup:
    try:
        instance = await client.messages(sid).fetch_async()
    except TwilioRestException as error:
        if error.status == 404:
            return Lookup(Found.not_found, detail=error.msg)
        return Lookup.unreachable(f"HTTP {error.status}: {error.msg}")
    except LOOKUP_ERRORS as error:
        return Lookup.unreachable(f"{type(error).__name__}: {error}")
    return Lookup(Found.found, records=(record_of(instance),))
