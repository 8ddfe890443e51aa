"""Where our link redirects land: the landing URL tagged so the visit it starts can be
credited to the message (docs/website-kpis.md, "Where a visit came from").

On redirect (`/s/<token>` for SMS and WhatsApp, `/t/c/<token>` for e-mail) the target URL
gets, unless it already has them (a link that carries its own utm_* keeps them: that is
how a send overrides them):

    utm_source=<landing_utm_source>  utm_medium=<channel>
    utm_campaign=<journey id>        utm_content=<template, else step>
    orc=<message reference>

The message reference is `<message id, base62><signature, 8 characters>`, e.g. `4c1Fa9_Kp-Q2`:
the e-mail links' HMAC (`tracking._mac`, same secret, its own context string) over the
message id, cut to 48 bits like the short links'. The site's page call carries it back in
its url; the visits fold (`orchestrator.kpis.visits`) verifies it and credits the
visit to that message, so a reference cannot be forged to credit another journey. UTM
values are plain text anyone can type; they only group visits the reference does not.
"""

from __future__ import annotations

import hmac
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from orchestrator.config import Settings
from orchestrator.delivery.short_links import base62, from_base62
from orchestrator.delivery.tracking import _b64encode, _mac

MESSAGE_PARAMETER = "orc"
_SIGNATURE_CHARACTERS = 8
_REFERENCE = re.compile(r"^([0-9A-Za-z]{1,11})([A-Za-z0-9_-]{8})$")


def _signature(settings: Settings, message_id: int) -> str:
    return _b64encode(_mac(settings.secret_key, f"visit.{message_id}"))[:_SIGNATURE_CHARACTERS]


def message_reference(settings: Settings, message_id: int) -> str:
    return base62(message_id) + _signature(settings, message_id)


def referenced_message(settings: Settings, reference: str | None) -> int | None:
    """The message id of a genuine reference; None for anything else (never raises)."""
    match = _REFERENCE.match(reference or "")
    if match is None:
        return None
    message_id = from_base62(match.group(1))
    return message_id if hmac.compare_digest(_signature(settings, message_id), match.group(2)) else None


def landing_url(settings: Settings, url: str, message) -> str:
    """`url` with the UTM parameters and the message reference `message` (a `Message` row)
    adds; keys already in the URL win. Unchanged when `landing_utm` is off."""
    if not settings.landing_utm or not url.startswith(("http://", "https://")):
        return url
    parts = urlsplit(url)
    present = {key for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
    added = {
        "utm_source": settings.landing_utm_source,
        "utm_medium": message.channel,
        "utm_campaign": message.journey_id,
        "utm_content": message.template or message.step_id,
        MESSAGE_PARAMETER: message_reference(settings, message.id),
    }
    extra = urlencode([(key, value) for key, value in added.items() if value and key not in present])
    # Appended, never re-encoded: the site reads its own parameters exactly as it wrote them.
    query = "&".join(part for part in (parts.query, extra) if part)
    return urlunsplit(parts._replace(query=query))
