"""Visits from page and screen views, and where each came from: pure functions, no
database (`orchestrator.kpis.site_fold` feeds them and stores what they return).

Rules (docs/website-kpis.md):
- One visitor's views, in `timestamp` order, belong to one visit while each follows the
  previous by less than the gap (30 minutes by default): 29:59 apart is the same visit,
  30:00 apart starts a new one. A view whose url carries a message reference other than
  the visit's starts a new visit too: a click on one of our links is a new arrival.
- A visit starts at its first view and ends at its last; its duration is the time between
  them, so a one-page visit (a bounce) lasts 0 s.
- The landing view gives the visit its url, path, referrer and UTM parameters: those of the
  url's query, else the call's `context.campaign` (as analytics.js fills it from the url).
- An `Order Completed` by the visitor converts the latest visit that started at or before
  it, if it came before that visit's end plus the conversion window: an order converts at
  most one visit.
- Source: a verified message reference credits the visit to that message (channel, journey,
  broadcast, source = our utm_source). Otherwise utm_source (and utm_medium as the channel),
  else the referrer's host (channel "referral"), else "direct".
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs, urlsplit

from orchestrator.delivery.landing import MESSAGE_PARAMETER

UTM_KEYS = ("source", "medium", "campaign", "content", "term")
CAMPAIGN_KEYS = {"source": "source", "medium": "medium", "campaign": "name", "content": "content", "term": "term"}
DIRECT, REFERRAL = "direct", "referral"


@dataclass(frozen=True)
class View:
    """One page or screen call as the fold reads it."""

    at: datetime
    properties: dict[str, Any]
    context: dict[str, Any] | None

    def _page(self, key: str) -> str | None:
        value = self.properties.get(key)
        if value in (None, "") and isinstance(self.context, dict) and isinstance(self.context.get("page"), dict):
            value = self.context["page"].get(key)
        return str(value) if value not in (None, "") else None

    @property
    def url(self) -> str | None:
        return self._page("url")

    @property
    def path(self) -> str | None:
        return self._page("path") or (urlsplit(self.url).path if self.url else None)

    @property
    def referrer(self) -> str | None:
        return self._page("referrer")

    def query(self) -> dict[str, str]:
        if not self.url:
            return {}
        return {key: values[0] for key, values in parse_qs(urlsplit(self.url).query).items()}

    @cached_property
    def message_reference(self) -> str | None:
        if f"{MESSAGE_PARAMETER}=" not in (self.url or ""):  # most views: no query to parse
            return None
        return self.query().get(MESSAGE_PARAMETER)

    def utm(self) -> dict[str, str | None]:
        query = self.query()
        campaign = (self.context or {}).get("campaign")
        campaign = campaign if isinstance(campaign, dict) else {}
        found = {key: query.get(f"utm_{key}") or campaign.get(CAMPAIGN_KEYS[key]) for key in UTM_KEYS}
        return {key: str(value)[:255] if value else None for key, value in found.items()}


@dataclass
class VisitDraft:
    views: list[View] = field(default_factory=list)
    converted_at: datetime | None = None

    @property
    def started_at(self) -> datetime:
        return self.views[0].at

    @property
    def ended_at(self) -> datetime:
        return self.views[-1].at

    @property
    def landing(self) -> View:
        return self.views[0]


def sessionize(views: list[View], gap: timedelta) -> list[VisitDraft]:
    visits: list[VisitDraft] = []
    # At one instant, a view with a reference first: it is the landing, not a second visit.
    for view in sorted(views, key=lambda v: (v.at, v.message_reference is None)):
        current = visits[-1] if visits else None
        reference = view.message_reference
        if (
            current is None
            or view.at - current.ended_at >= gap
            # a new arrival, and strictly later: a visitor's visits never share a start
            or (reference not in (None, current.landing.message_reference) and view.at > current.started_at)
        ):
            visits.append(VisitDraft())
        visits[-1].views.append(view)
    return visits


def credit_orders(visits: list[VisitDraft], orders: list[datetime], window: timedelta) -> None:
    """Mark each visit an order converts (the latest started at or before it, within its end
    plus `window`); the earliest such order is the visit's `converted_at`."""
    starts = [visit.started_at for visit in visits]
    for ordered_at in sorted(orders):
        position = bisect.bisect_right(starts, ordered_at) - 1
        if position < 0:
            continue
        visit = visits[position]
        if ordered_at <= visit.ended_at + window and visit.converted_at is None:
            visit.converted_at = ordered_at


@dataclass(frozen=True)
class Credit:
    """Our message a visit is credited to."""

    message_id: int
    channel: str
    journey_id: str
    broadcast_id: str


def host_of(url: str | None) -> str | None:
    try:
        return (urlsplit(url).hostname or None) if url else None
    except ValueError:
        return None


def visit_row(
    visitor: str,
    customer_id: int | None,
    visit: VisitDraft,
    credit_of: Callable[[str | None], Credit | None],
    ours: str,
) -> dict[str, Any]:
    """The `visits` row of a visit; `credit_of` resolves a message reference, `ours` is the
    utm_source our redirects add."""
    landing = visit.landing
    utm = landing.utm()
    credit = credit_of(landing.message_reference)
    referrer_host = host_of(landing.referrer)
    if referrer_host is not None and referrer_host == host_of(landing.url):
        referrer_host = None  # a referrer on the site itself: a visit resumed, not a source
    if credit is not None:
        channel, journey, broadcast, source = credit.channel, credit.journey_id, credit.broadcast_id, utm["source"]
        source = source or ours
    elif utm["source"]:
        # Our own UTM without a valid reference (the parameter was cut off): still our channel
        # and journey, by what the link said.
        mine = utm["source"] == ours
        channel = utm["medium"] or utm["source"]
        journey, broadcast, source = (utm["campaign"] or "") if mine else "", "", utm["source"]
    elif referrer_host is not None:
        channel, journey, broadcast, source = REFERRAL, "", "", referrer_host[:255]
    else:
        channel, journey, broadcast, source = DIRECT, "", "", DIRECT
    return dict(
        visitor=visitor,
        customer_id=customer_id,
        started_at=visit.started_at,
        ended_at=visit.ended_at,
        seconds=int((visit.ended_at - visit.started_at).total_seconds()),
        pages=len(visit.views),
        landing_url=landing.url,
        landing_path=landing.path,
        referrer=landing.referrer,
        **{f"utm_{key}": utm[key] for key in UTM_KEYS},
        message_id=credit.message_id if credit else None,
        channel=channel[:255],
        journey_id=journey[:100],
        broadcast_id=broadcast[:100],
        source=source[:255],
        converted_at=visit.converted_at,
    )
