"""Tracked short links in SMS and WhatsApp bodies.

A long URL costs an SMS dearly (a 90-character product link is most of a 160-septet
segment), and a click on it tells us nothing. So, in a marketing SMS or WhatsApp message,
every http(s) URL of the rendered body, and every `app_link(...)` the template calls, is
replaced at render time by

    <short base URL>/s/<enrollment id, base62><signature, 8 characters>

e.g. `https://go.shop.tw/s/4c1Fa9_Kp-Q2x` (the base is `short_link_base_url`, else
`public_base_url`). What the link leads to is stored with the message itself, in
`template_metadata["links"]` (index, target URL, optional app target), so nothing else is
written per link and no id has to exist before the message row does.

The signature is the e-mail links' HMAC (`tracking._mac`, same secret, its own context
string) over the message's send key, the link's index and its target(s), cut to 48 bits.
A visit is honoured only when the enrollment named in the token has a message holding a
link with exactly that signature, recomputed from what that message stores: a token cannot
be forged or pointed elsewhere, and the redirect only ever goes to a URL we rendered, so it
is never an open redirect. 48 bits (rather than e-mail's 128) keep the link short; guessing
one means ~10^14 requests to our server, each answered 404.

Where the link is not shortened (e-mail, transactional messages, no enrollment), an
`app_link` becomes its web URL, so a template can be shared between channels.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Any

from orchestrator.config import Settings
from orchestrator.delivery.tracking import _b64encode, _mac
from orchestrator.templating.app_links import APP_MARKER as _APP_MARKER
from orchestrator.templating.render import RenderError
from orchestrator.vocabulary import PHONE_CHANNELS

SHORT_PATH = "/s/"
_SIGNATURE_CHARACTERS = 8  # 6 bytes of MAC in base64url
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Preview and validation do not know the enrollment id yet: they count this many characters
# for it, enough for 62^6 ≈ 5.7e10 enrollments, so a measured segment count never grows later.
PREVIEW_ID_CHARACTERS = 6
_TOKEN = re.compile(r"^([0-9A-Za-z]{1,11})([A-Za-z0-9_-]{8})$")

# A URL in plain text ends at white space; trailing punctuation belongs to the sentence.
_PLAIN_URL = re.compile(r"https?://[^\s<>\"'\ue000-\ue002]+")
_APP_TARGET = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")
_REFUSED_SCHEMES = {"javascript", "data", "vbscript", "file", "about", "blob"}
_TRAILING_PUNCTUATION = ".,;:!?)]}»\"'。，！？）"


@dataclass(frozen=True)
class ShortLink:
    index: int
    url: str  # the web page: where the redirect goes when no app opens
    app: str | None = None  # the app target tried first, when the template named one

    def as_metadata(self) -> dict[str, Any]:
        return {"index": self.index, "url": self.url, **({"app": self.app} if self.app else {})}


def base62(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 62)
        digits = _BASE62[digit] + digits
        if number == 0:
            return digits


def from_base62(text: str) -> int:
    number = 0
    for character in text:
        number = number * 62 + _BASE62.index(character)
    return number


def signature(settings: Settings, send_key: str, link: ShortLink) -> str:
    payload = "\n".join(("short", send_key, str(link.index), link.url, link.app or ""))
    # `_mac` signs ASCII; URLs may hold any character, so the payload travels as UTF-8 base64.
    return _b64encode(_mac(settings.secret_key, _b64encode(payload.encode())))[:_SIGNATURE_CHARACTERS]


def short_base_url(settings: Settings) -> str:
    return (settings.short_link_base_url or settings.public_base_url).rstrip("/")


def short_url(settings: Settings, enrollment_id: int, send_key: str, link: ShortLink) -> str:
    return f"{short_base_url(settings)}{SHORT_PATH}{base62(enrollment_id)}{signature(settings, send_key, link)}"


def preview_url(settings: Settings) -> str:
    """A stand-in of the longest length a short link will have (see PREVIEW_ID_CHARACTERS)."""
    return f"{short_base_url(settings)}{SHORT_PATH}{'x' * (PREVIEW_ID_CHARACTERS + _SIGNATURE_CHARACTERS)}"


def shortens(settings: Settings | None, channel: str, marketing: bool, enrollment_id: int | None) -> bool:
    """Only marketing SMS and WhatsApp of a journey: transactional links (a password reset)
    must not pass through a redirect that logs them, as for e-mail."""
    return enrollment_id is not None and _shortens_sends(settings, channel, marketing)


def _shortens_sends(settings: Settings | None, channel: str, marketing: bool) -> bool:
    return settings is not None and settings.short_links and channel in PHONE_CHANNELS and marketing


def web_urls_only(text: str | None) -> str | None:
    """Every `app_link` marker replaced by its web URL (for text that is not shortened)."""
    return _APP_MARKER.sub(lambda match: match.group(2), text) if text else text


def _split_trailing(url: str) -> tuple[str, str]:
    kept = url.rstrip(_TRAILING_PUNCTUATION)
    if url.endswith(")") and kept.count("(") > kept.count(")"):  # a Wikipedia-style URL keeps its ")"
        kept += ")"
    return kept, url[len(kept) :]


def apply_links(
    text: str, settings: Settings | None, *, channel: str, marketing: bool, enrollment_id: int | None, send_key: str
) -> tuple[str, list[ShortLink]]:
    """(body to send, links it carries): URLs shortened where `shortens` says so."""
    if not shortens(settings, channel, marketing, enrollment_id):
        return web_urls_only(text) or "", []
    links: list[ShortLink] = []

    def shortened(link: ShortLink) -> str:
        links.append(link)
        return short_url(settings, enrollment_id, send_key, link)

    def replace_app_link(app: str, web: str) -> str:
        app, web = app.strip(), web.strip()
        if not web.startswith(("http://", "https://")):
            raise RenderError(f"app_link needs an http(s) web fallback, got {web!r}")
        # The app target becomes a link on our own page: never a script or data URL (the
        # marker could come from customer data), only `scheme://…` of an app or the web.
        if not _APP_TARGET.match(app) or app.split(":", 1)[0].lower() in _REFUSED_SCHEMES:
            raise RenderError(f"app_link needs an app target like shop://… or https://…, got {app!r}")
        return shortened(ShortLink(len(links), web, app or None))

    def replace_url(match: re.Match[str]) -> str:
        url, trailing = _split_trailing(match.group(0))
        if url.startswith(short_base_url(settings) + SHORT_PATH):
            return match.group(0)  # already one of ours
        return shortened(ShortLink(len(links), url)) + trailing

    # App links first, so the URLs inside a marker are not shortened on their own.
    parts = _APP_MARKER.split(text)
    body = []
    for position in range(0, len(parts), 3):
        body.append(_PLAIN_URL.sub(replace_url, parts[position]))
        if position + 2 < len(parts):
            body.append(replace_app_link(parts[position + 1], parts[position + 2]))
    return "".join(body), links


def measured_body(text: str, settings: Settings | None, *, channel: str, marketing: bool) -> str:
    """The body of a journey's send as preview and validate measure it before any enrollment
    exists: where `apply_links` will shorten, every link at its longest short length (so a
    measured segment count never grows when sent); elsewhere the body as it goes out."""
    if not _shortens_sends(settings, channel, marketing):
        return web_urls_only(text) or ""
    stand_in = preview_url(settings)
    text = _APP_MARKER.sub(stand_in, text)
    return _PLAIN_URL.sub(lambda match: stand_in + _split_trailing(match.group(0))[1], text)


def parse_token(token: str) -> tuple[int, str] | None:
    """(enrollment id, signature) of a well-formed token; None for anything else."""
    match = _TOKEN.match(token)
    return (from_base62(match.group(1)), match.group(2)) if match else None


def find_link(settings: Settings, signature_in_token: str, messages: list[Any]) -> tuple[Any, ShortLink] | None:
    """The message and link whose recomputed signature is the token's, among an enrollment's messages."""
    for message in messages:
        for stored in (message.template_metadata or {}).get("links", []):
            link = ShortLink(int(stored["index"]), str(stored["url"]), stored.get("app"))
            if hmac.compare_digest(signature(settings, message.send_key, link), signature_in_token):
                return message, link
    return None
