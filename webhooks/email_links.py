"""The links inside our e-mail: open pixel, click redirect, unsubscribe (RFC 8058 and a page).

- `GET /t/o/{token}.gif` records an open and always answers the 1x1 GIF: a broken image in
  someone's mail is worse than a lost statistic, so a bad token or a database hiccup is
  swallowed (and logged).
- `GET /t/c/{token}` records a click and redirects to the URL inside the signed token (with
  UTM parameters and a message reference, `orchestrator.delivery.landing`). A
  token that does not verify gets 404, never a redirect: the URL comes only from a
  signature we made, so this can never serve as an open redirect.
- `GET /unsubscribe/{token}` only shows a confirmation form. Mail scanners and link
  previewers fetch every URL in a message; if GET unsubscribed, they would unsubscribe
  people who never asked to.
- `POST /unsubscribe/{token}` unsubscribes: both the form on that page and the RFC 8058
  one-click POST (`List-Unsubscribe=One-Click`) that Gmail and Yahoo send from their own
  "Unsubscribe" button, which the `List-Unsubscribe-Post` header announces.
"""

from __future__ import annotations

import base64
import html
import logging
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from orchestrator.customers.consent import OPTED_OUT, record_consent
from orchestrator.delivery.landing import landing_url
from orchestrator.delivery.statuses import record_status
from orchestrator.delivery.tracking import CLICK, OPEN, UNSUBSCRIBE, LinkClaims, verify
from orchestrator.runtime import Runtime
from orchestrator.storage.models import Customer, Message
from orchestrator.templating.render import page_words
from orchestrator.web.dependencies import RuntimeDep

log = logging.getLogger("orchestrator.email_links")
router = APIRouter(tags=["e-mail links"])

TRANSPARENT_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# Every fetch must reach us (or the open is lost), and a token must not leak to the sites
# people click through to, nor our pages land in search results.
_NO_CACHE = {"Cache-Control": "no-store, max-age=0", "Pragma": "no-cache"}
_PRIVATE = {**_NO_CACHE, "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}

# The page's words are a template like every other customer-facing text
# (templates/unsubscribe-page/<locale>.txt: subject = title, body = question, front matter for
# the rest), so marketers translate and reword them where they edit messages.
PAGE_TEMPLATE = "unsubscribe-page"
# Only if that template was deleted: the page must still work, in plain English.
_FALLBACK_TEXT = {
    "title": "Unsubscribe",
    "question": "Do you want to stop receiving our marketing e-mails?",
    "button": "Unsubscribe",
    "done": "You are unsubscribed.",
    "invalid": "This link is not valid.",
    "lang": "en",
}


@router.get("/t/o/{token}.gif", include_in_schema=False)
async def open_pixel(token: str, request: Request, runtime: RuntimeDep) -> Response:
    claims = verify(runtime.settings, token, OPEN)
    if claims is not None:
        await _record_engagement(runtime, claims, OPEN, {"user_agent": request.headers.get("user-agent")})
    return Response(TRANSPARENT_GIF, media_type="image/gif", headers=_NO_CACHE)


@router.get("/t/c/{token}", include_in_schema=False)
async def click_redirect(token: str, request: Request, runtime: RuntimeDep) -> Response:
    claims = verify(runtime.settings, token, CLICK)
    if claims is None or not (claims.url or "").startswith(("http://", "https://")):
        return Response("not found", status_code=404, media_type="text/plain", headers=_PRIVATE)
    message = await _record_engagement(
        runtime, claims, CLICK, {"url": claims.url, "user_agent": request.headers.get("user-agent")}
    )
    # The landing page gets UTM parameters and the message reference that credit the visit
    # (orchestrator.delivery.landing); as written when the message could not be read.
    target = claims.url if message is None else landing_url(runtime.settings, claims.url, message)
    return RedirectResponse(target, status_code=302, headers=_PRIVATE)


async def _record_engagement(runtime: Runtime, claims: LinkClaims, status: str, detail: dict) -> Message | None:
    """Record an open or click, and return the message; trouble is logged, never shown to
    the person clicking."""
    try:
        async with runtime.sessions() as session, session.begin():
            message = await session.get(Message, claims.message_id)
            if message is not None:
                await record_status(
                    session,
                    message,
                    source="tracking",
                    status=status,
                    now=runtime.clock.now(),
                    detail={k: v for k, v in detail.items() if v},
                )
            return message
    except Exception:
        log.exception("could not record %s for message %s", status, claims.message_id)
        return None


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
async def unsubscribe_form(token: str, runtime: RuntimeDep) -> HTMLResponse:
    claims = verify(runtime.settings, token, UNSUBSCRIBE)
    customer = await _customer(runtime, claims)
    if claims is None or customer is None:
        return _page(_text(runtime, None), "invalid", status_code=404)
    text = _text(runtime, customer)
    # No `action`: the form posts back to this very URL, token included.
    form = f'<form method="post"><button type="submit">{html.escape(text["button"])}</button></form>'
    return _page(text, "question", extra=form)


@router.post("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
async def unsubscribe(token: str, request: Request, runtime: RuntimeDep) -> HTMLResponse:
    claims = verify(runtime.settings, token, UNSUBSCRIBE)
    if claims is None or claims.customer_id is None:
        return _page(_text(runtime, None), "invalid", status_code=404)
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    one_click = form.get("List-Unsubscribe") == ["One-Click"]
    evidence = {
        "message_id": claims.message_id,
        "method": "one_click" if one_click else "form",  # RFC 8058 POST from the mailbox, or our page
        "user_agent": request.headers.get("user-agent"),
        "ip": request.client.host if request.client else None,
        "forwarded_for": request.headers.get("x-forwarded-for"),
    }
    async with runtime.sessions() as session, session.begin():
        customer = await session.get(Customer, claims.customer_id)
        if customer is None:
            return _page(_text(runtime, None), "invalid", status_code=404)
        # Unsubscribing twice is fine and changes nothing: the ledger records changes only.
        await record_consent(
            session,
            customer.id,
            claims.channel or "email",
            OPTED_OUT,
            "unsubscribe_link",
            runtime.clock.now(),
            {k: v for k, v in evidence.items() if v is not None},
            only_if_changed=True,
        )
        text = _text(runtime, customer)
    return _page(text, "done")


async def _customer(runtime: Runtime, claims: LinkClaims | None) -> Customer | None:
    if claims is None or claims.customer_id is None:
        return None
    async with runtime.sessions() as session:
        return await session.get(Customer, claims.customer_id)


def _text(runtime: Runtime, customer: Customer | None) -> dict[str, str]:
    locale = customer.locale if customer else None
    return page_words(
        runtime.templates, PAGE_TEMPLATE, locale, _FALLBACK_TEXT, "question", runtime.settings.default_locale
    )


def _page(text: dict[str, str], message_key: str, *, extra: str = "", status_code: int = 200) -> HTMLResponse:
    page = f"""<!doctype html>
<html lang="{html.escape(text["lang"])}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{html.escape(text["title"])}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}
button{{font-size:1rem;padding:.5rem 1.25rem}}</style></head>
<body><h1>{html.escape(text["title"])}</h1><p>{html.escape(text[message_key])}</p>{extra}</body>
</html>
"""
    return HTMLResponse(page, status_code=status_code, headers=_PRIVATE)
