"""The `app_link(app, web)` template helper: a link into the app with a web fallback.

It renders both URLs between private-use characters no customer text contains, so the
step that shortens links (`orchestrator.delivery.short_links`) can find the pair after the
template has run; where links are not shortened the marker becomes the web URL.
"""

from __future__ import annotations

import re
from typing import Any

APP_OPEN, APP_SPLIT, APP_CLOSE = "\ue000", "\ue001", "\ue002"
APP_MARKER = re.compile(f"{APP_OPEN}([^{APP_SPLIT}]*){APP_SPLIT}([^{APP_CLOSE}]*){APP_CLOSE}")


def app_link(app: Any, web: Any) -> str:
    """`{{ app_link('shop://sizes?size=' ~ size, 'https://shop.example/sizes') }}`.

    `app` is a custom-scheme URL or a universal/app link, `web` the page for everyone
    without the app (http or https); both are rendered with the customer's variables."""
    return f"{APP_OPEN}{app}{APP_SPLIT}{web}{APP_CLOSE}"
