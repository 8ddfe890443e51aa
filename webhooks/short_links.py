"""`GET /s/{token}` (and `HEAD`): the short links of SMS and WhatsApp messages.

- A token that does not verify against a message we sent gets 404, never a redirect: the
  target comes only from the message row, under a signature we made
  (`orchestrator.delivery.short_links`), so this is never an open redirect.
- A preview or a scan (`orchestrator.delivery.link_visitors`) is recorded as
  `link_preview` in the message's history and sent on to the web page (so the preview card
  shows the real page), but never counted as a click.
- A person's visit records a `click` (the message's `first_clicked_at` keeps the first, so
  a message counts once for the click rate) and goes to the web URL with a 302, or, for a
  link with an app target, to a small page that opens the app and falls back to the web.
  The web URL gets UTM parameters and a message reference (`orchestrator.delivery.landing`)
  so the visit it starts is credited; a preview gets the URL as written.
Trouble recording is logged, never shown to the person clicking.
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import replace

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import col, select

from orchestrator.delivery.landing import landing_url
from orchestrator.delivery.link_visitors import preview_signal
from orchestrator.delivery.short_links import SHORT_PATH, ShortLink, find_link, parse_token
from orchestrator.delivery.statuses import CLICK, record_status
from orchestrator.runtime import Runtime
from orchestrator.storage.models import Customer, Message
from orchestrator.templating.render import page_words
from orchestrator.vocabulary import PHONE_CHANNELS
from orchestrator.web.dependencies import RuntimeDep

log = logging.getLogger("orchestrator.short_links")
router = APIRouter(tags=["short links"])

LINK_PREVIEW = "link_preview"  # history only: statuses.MEANING does not know it
PAGE_TEMPLATE = "app-link-page"
_FALLBACK_TEXT = {
    "title": "Opening the app…",
    "open_app": "Open the app",
    "continue": "Continue on the web",
    "hint": "If the app does not open, continue on the web.",
    "invalid": "This link is not valid.",
    "lang": "en",
}
# Every visit must reach us; the token must not leak to the pages people go on to, nor
# our URLs land in search results.
_PRIVATE = {"Cache-Control": "no-store, max-age=0", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
APP_FALLBACK_MILLISECONDS = 1500  # how long the page waits for the app before showing the web page


@router.api_route(SHORT_PATH + "{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def follow_short_link(token: str, request: Request, runtime: RuntimeDep) -> Response:
    found = await _find(runtime, token)
    if found is None:
        return Response("not found", status_code=404, media_type="text/plain", headers=_PRIVATE)
    message, link = found
    signal = preview_signal(request.method, request.headers)
    detail = {"url": link.url, "link": link.index, "user_agent": request.headers.get("user-agent")}
    if signal is not None:
        await _record(runtime, message, LINK_PREVIEW, {**detail, "signal": signal})
        return RedirectResponse(link.url, status_code=302, headers=_PRIVATE)
    await _record(runtime, message, CLICK, detail)
    # A person, not a preview: the page they land on carries the UTM parameters and the
    # message reference that credit their visit (orchestrator.delivery.landing).
    link = replace(link, url=landing_url(runtime.settings, link.url, message))
    if link.app:
        return await _app_page(runtime, message, link)
    return RedirectResponse(link.url, status_code=302, headers=_PRIVATE)


async def _find(runtime: Runtime, token: str) -> tuple[Message, ShortLink] | None:
    parsed = parse_token(token)
    if parsed is None:
        return None
    enrollment_id, signature = parsed
    async with runtime.sessions() as session:
        messages = (
            await session.exec(
                select(Message).where(
                    Message.enrollment_id == enrollment_id,
                    col(Message.channel).in_([c.value for c in PHONE_CHANNELS]),
                    col(Message.tracked_links) > 0,
                )
            )
        ).all()
    return find_link(runtime.settings, signature, list(messages))


async def _record(runtime: Runtime, message: Message, status: str, detail: dict) -> None:
    try:
        async with runtime.sessions() as session, session.begin():
            row = await session.get(Message, message.id)
            if row is not None:
                await record_status(
                    session,
                    row,
                    source="short_link",
                    status=status,
                    now=runtime.clock.now(),
                    detail={k: v for k, v in detail.items() if v is not None},
                )
    except Exception:
        log.exception("could not record %s for message %s", status, message.id)


async def _app_page(runtime: Runtime, message: Message, link: ShortLink) -> HTMLResponse:
    """Try the app, then the web page: a script navigates to the app target and, if the page
    is still showing after a moment (no app took over), replaces itself with the web page.
    Both are also plain links, since iOS opens universal links only on a tap."""
    text = await _text(runtime, message.customer_id)
    app, web = html.escape(link.app or ""), html.escape(link.url)
    # JSON in a script: `</` escaped so a URL can never close the script element.
    script = (
        f"var app={json.dumps(link.app)},web={json.dumps(link.url)};location.href=app;"
        f"setTimeout(function(){{if(!document.hidden)location.replace(web)}},{APP_FALLBACK_MILLISECONDS});"
    ).replace("</", "<\\/")
    page = f"""<!doctype html>
<html lang="{html.escape(text["lang"])}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{html.escape(text["title"])}</title>
<noscript><meta http-equiv="refresh" content="0;url={web}"></noscript>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}
a{{display:block;margin:1rem 0;font-size:1.1rem}}</style></head>
<body><h1>{html.escape(text["title"])}</h1><p>{html.escape(text["hint"])}</p>
<a id="app" href="{app}">{html.escape(text["open_app"])}</a><a id="web" href="{web}">{html.escape(text["continue"])}</a>
<script>{script}</script></body>
</html>
"""
    return HTMLResponse(page, headers=_PRIVATE)


async def _text(runtime: Runtime, customer_id: int) -> dict[str, str]:
    """The page's words in the customer's language, by the same fallback as message templates."""
    async with runtime.sessions() as session:
        customer = await session.get(Customer, customer_id)
    locale = customer.locale if customer else None
    return page_words(runtime.templates, PAGE_TEMPLATE, locale, _FALLBACK_TEXT, "hint", runtime.settings.default_locale)
