"""Signed links in our own e-mail: open pixel, click redirects, unsubscribe.

SendGrid tracks opens and clicks itself; mail sent over SMTP has only what we put in it.
Every link carries a token that says what it is for (open, click, unsubscribe) and for which
message (and, for a click, which URL), signed with HMAC-SHA256 under `settings.secret_key`:

    <base64url(JSON claims)>.<base64url(HMAC-SHA256(secret, "orchestrator-link-v1." + claims)[:16])>

Why signed rather than random ids in a table: nothing to store per link, and a token cannot
be forged or altered, so the click redirect can never be turned into an open redirect and
nobody can unsubscribe someone else by counting message ids. The claims are readable (they
hold only ids and the target URL, both already known to the recipient); 128 bits of MAC are
plenty against guessing. Tokens do not expire: unsubscribe links must keep working for as
long as the mail sits in an inbox, and changing `secret_key` invalidates every link sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html as html_escaping
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from orchestrator.config import Settings

OPEN, CLICK, UNSUBSCRIBE = "open", "click", "unsubscribe"
_PURPOSE_CODES = {OPEN: "o", CLICK: "c", UNSUBSCRIBE: "u"}
_CLAIM_KEYS = {"message_id": "m", "customer_id": "c", "channel": "h", "url": "u"}  # short: links stay short
_SIGNING_CONTEXT = b"orchestrator-link-v1."
_MAC_BYTES = 16
_MAX_TOKEN_LENGTH = 8192  # a click token holds its URL; anything longer is not ours

# An http(s) href in an <a> tag, with its quote character, so it can be put back as it was.
_LINK_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']*)\2""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class LinkClaims:
    """What a verified token says."""

    purpose: str
    message_id: int | None = None
    customer_id: int | None = None
    channel: str | None = None
    url: str | None = None


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret_key: str | None, payload: str) -> bytes:
    if not secret_key:  # never sign with a guessable fallback; the runtime fills it from the database
        raise ValueError("no secret_key: build the settings with orchestrator.auth.service_secrets first")
    return hmac.new(secret_key.encode(), _SIGNING_CONTEXT + payload.encode("ascii"), hashlib.sha256).digest()[
        :_MAC_BYTES
    ]


def sign(settings: Settings, claims: LinkClaims) -> str:
    compact: dict[str, Any] = {"p": _PURPOSE_CODES[claims.purpose]}
    compact.update(
        {
            _CLAIM_KEYS[name]: value
            for name, value in asdict(claims).items()
            if name in _CLAIM_KEYS and value is not None
        }
    )
    payload = _b64encode(json.dumps(compact, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{payload}.{_b64encode(_mac(settings.secret_key, payload))}"


def verify(settings: Settings, token: str, purpose: str) -> LinkClaims | None:
    """The claims of a genuine token for `purpose`; None for anything else (never raises)."""
    if len(token) > _MAX_TOKEN_LENGTH or token.count(".") != 1:
        return None
    payload, signature = token.split(".")
    try:
        if not hmac.compare_digest(_b64decode(signature), _mac(settings.secret_key, payload)):
            return None
        compact = json.loads(_b64decode(payload))
    except (ValueError, UnicodeError):  # binascii.Error and JSONDecodeError are ValueErrors
        return None
    if not isinstance(compact, dict) or compact.get("p") != _PURPOSE_CODES[purpose]:
        return None
    return LinkClaims(purpose, **{name: compact.get(key) for name, key in _CLAIM_KEYS.items()})


def open_pixel_url(settings: Settings, message_id: int) -> str:
    return f"{settings.public_base_url}/t/o/{sign(settings, LinkClaims(OPEN, message_id=message_id))}.gif"


def click_url(settings: Settings, message_id: int, target_url: str) -> str:
    return f"{settings.public_base_url}/t/c/{sign(settings, LinkClaims(CLICK, message_id=message_id, url=target_url))}"


def unsubscribe_url(
    settings: Settings, *, customer_id: int, channel: str = "email", message_id: int | None = None
) -> str:
    """The customer and channel travel in the token itself, so the link keeps working even
    if the message row is gone; the message id is evidence for the consent ledger."""
    claims = LinkClaims(UNSUBSCRIBE, message_id=message_id, customer_id=customer_id, channel=channel)
    return f"{settings.public_base_url}/unsubscribe/{sign(settings, claims)}"


def instrument_html(html: str, settings: Settings, message_id: int) -> str:
    """Route the HTML part's http(s) links through click redirects and add an open pixel.

    Links to our own service (the unsubscribe page) are left alone. The plain-text part is
    not touched: people copy those URLs by hand, and a redirect there buys little.
    """
    own = settings.public_base_url + "/"

    def through_redirect(match: re.Match[str]) -> str:
        target = html_escaping.unescape(match.group(3))  # the href as the browser will read it
        if target.startswith(own):
            return match.group(0)
        quote = match.group(2)
        return f"{match.group(1)}{quote}{html_escaping.escape(click_url(settings, message_id, target))}{quote}"

    instrumented = _LINK_HREF.sub(through_redirect, html)
    pixel = (
        f'<img src="{html_escaping.escape(open_pixel_url(settings, message_id))}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0" />'
    )
    body_ends = list(_BODY_END.finditer(instrumented))
    if body_ends:
        at = body_ends[-1].start()
        return instrumented[:at] + pixel + instrumented[at:]
    return instrumented + pixel


def email_links(settings: Settings, message) -> tuple[str | None, str | None]:
    """(unsubscribe URL, HTML to send) for an e-mail `Message` row about to go out.

    Only marketing mail gets them: transactional mail (a password reset) needs no
    unsubscribe link, and its links should not pass through a redirect that logs them.
    """
    if not message.marketing:
        return None, message.html
    unsubscribe = unsubscribe_url(
        settings, customer_id=message.customer_id, channel=message.channel, message_id=message.id
    )
    html = message.html
    if html and settings.email_tracking and settings.email_provider == "smtp":
        html = instrument_html(html, settings, message.id)
    return unsubscribe, html
