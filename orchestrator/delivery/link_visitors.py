"""Who is opening a short link: the customer, or a machine fetching it for them.

Messaging apps fetch every link in a message to draw a preview card (WhatsApp, iMessage,
Telegram, Slack, ...), carriers and security products fetch links to scan them, and
browsers prefetch. None of that is a customer clicking, so such a visit is recorded
(`link_preview` in the message's status history, with the signal that gave it away) and
never counted as a click.

The signals, in order:
1. The method: `HEAD` asks about the page without reading it, which no tap does.
2. Prefetch headers browsers send when they fetch speculatively: `Purpose: prefetch`,
   `Sec-Purpose: prefetch` (also `prefetch;prerender`), `X-Purpose: preview`,
   `X-Moz: prefetch`.
3. The User-Agent: the preview and scanner agents below (case-insensitive substrings), or
   no User-Agent at all (no browser omits it; bare scripts and scanners do).

What remains is counted as a click. A scanner that poses as a browser in every respect is
counted too: nothing in the request tells it apart; clicks count once per message anyway.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Preview fetchers and scanners by their own names. iMessage previews say
# "facebookexternalhit/1.1 Facebot Twitterbot/1.0"; WhatsApp's say "WhatsApp/2.x".
PREVIEW_AGENTS = (
    "whatsapp",
    "facebookexternalhit",
    "facebot",
    "twitterbot",
    "slackbot",
    "slack-imgproxy",
    "telegrambot",
    "discordbot",
    "linkedinbot",
    "skypeuripreview",
    "viber",
    "line-poker",
    "snapchat",
    "pinterest",
    "redditbot",
    "embedly",
    "iframely",
    "google-pagerenderer",
    "googlebot",
    "bingbot",
    "bingpreview",
    "applebot",
    "yandex",
    "duckduckbot",
    "microsoft office",
    "ms-office",
    "outlook-ios-android",
    "msteams",
    "skype",
    "barracuda",
    "proofpoint",
    "mimecast",
    "symantec",
    "trendmicro",
    "zscaler",
    "forcepoint",
    "sophos",
    "fortiguard",
    "paloalto",
    "checkpoint",
    "urlscan",
    "virustotal",
    "safebrowsing",
    "headlesschrome",
    "phantomjs",
    "python-requests",
    "python-urllib",
    "go-http-client",
    "curl/",
    "wget/",
    "okhttp",
    "java/",
    "libwww-perl",
    "bot",
    "crawler",
    "spider",
    "preview",
    "scanner",
)
_AGENT_PATTERN = re.compile("|".join(re.escape(agent) for agent in PREVIEW_AGENTS), re.IGNORECASE)
_PREFETCH_HEADERS = {"purpose": "prefetch", "sec-purpose": "prefetch", "x-purpose": "preview", "x-moz": "prefetch"}


def preview_signal(method: str, headers: Mapping[str, str]) -> str | None:
    """Why this visit is a preview or a scan (e.g. `head`, `sec-purpose: prefetch`,
    `user-agent: whatsapp`), or None for a person's click."""
    if method.upper() == "HEAD":
        return "head"
    for name, marker in _PREFETCH_HEADERS.items():
        value = (headers.get(name) or "").lower()
        if marker in value:
            return f"{name}: {value}"
    agent = (headers.get("user-agent") or "").strip()
    if not agent:
        return "no user-agent"
    found = _AGENT_PATTERN.search(agent)
    return f"user-agent: {found.group(0).lower()}" if found else None
