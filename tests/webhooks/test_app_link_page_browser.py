"""The app-link page's script in a real browser (Debian's Chromium driven by Playwright).

The service runs as `orchestrator serve` runs it, on a simulated clock: the launch
post-purchase journey sends its second-code SMS a week after an order, and the short link
in it leads to the page that tries the app, then the web. Chromium has no app for `shop://`,
as a phone without the app installed: the attempt is seen as a navigation request that
fails, and the page, still showing, replaces itself with the web page. The web page itself
is answered by Playwright's routing, so nothing leaves the machine.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.console.test_browser import CHROMIUM, CHROMIUM_ARGS, Service, _until

pytestmark = [
    pytest.mark.acceptance,  # a real browser against the service on a real port
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}: scripts/bootstrap.sh test installs it"
    ),
]

SHORT_LINK = re.compile(r"http://127\.0\.0\.1:\d+/s/[0-9A-Za-z_-]+")
APP = "shop://second-code?code=AGAIN10-INES&size=38&after=boots-12"
# The web page, with the UTM and the signed message reference every redirect adds (docs/website-kpis.md)
WEB = re.compile(
    re.escape(
        "https://shop.example/second-code?code=AGAIN10-INES&size=38&utm_source=orchestrator&utm_medium=sms"
        "&utm_campaign=post-purchase&utm_content=post-purchase-second-code&orc="
    )
    + r"[0-9A-Za-z_-]+"
)
WEEK = 7 * 24 * 3600


PHONE_BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
WEB_PAGE = "<!doctype html><title>Your second code</title><p>AGAIN10-INES</p>"


@pytest.fixture(scope="module")
def short_link(tmp_path_factory):
    """The short link of Ines's second-code SMS (Madrid, 10:00 there: outside quiet hours)."""
    tmp = tmp_path_factory.mktemp("app-link")
    with (
        Service(tmp, simulated_clock=True, simulated_clock_start="2026-03-02T10:00:00+01:00") as service,
        httpx.Client(base_url=service.url, timeout=30) as http,
    ):
        traits = {"phone": "+34600000002", "sms_opt_in": True, "locale": "es", "size": "38"}
        http.post("/v1/identify", json={"userId": "ines", "traits": traits}).raise_for_status()
        order = {"order_id": "B-9", "product_id": "boots-12", "revenue": 80}
        http.post(
            "/v1/track", json={"userId": "ines", "event": "Order Completed", "properties": order}
        ).raise_for_status()
        http.post("/v1/admin/clock/advance", json={"seconds": WEEK}).raise_for_status()

        def second_code() -> str | None:
            messages = http.get("/v1/customers/ines").json()["messages"]
            sent = [m for m in messages if m["step_id"] == "second-code-sms" and m["status"] in ("sent", "delivered")]
            return sent[0]["body"] if sent else None

        [link] = SHORT_LINK.findall(_until(second_code, "the second-code SMS to be sent"))
        yield link


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def phone(browser):
    """A phone's browser without the shop's app: every navigation it makes is recorded, the
    short-link page is read on its way through, and the shop's web page is answered here."""
    context = browser.new_context(user_agent=PHONE_BROWSER)
    page = context.new_page()
    page.navigations, page.short_link_pages = [], []
    page.on("request", lambda request: request.is_navigation_request() and page.navigations.append(request.url))

    def read_on_the_way(route) -> None:
        response = route.fetch()
        page.short_link_pages.append(response.text())
        route.fulfill(response=response)

    context.route(re.compile(r".*/s/.*"), read_on_the_way)
    context.route("https://shop.example/**", lambda route: route.fulfill(content_type="text/html", body=WEB_PAGE))
    yield page
    context.close()


def test_the_page_tries_the_app_then_falls_back_to_the_personalised_web_page(phone, short_link):
    phone.goto(short_link)
    phone.wait_for_url(WEB)  # the app did not take over: the page replaced itself
    [first, app, web] = phone.navigations  # the app first, then the web, nothing else
    assert (first, app) == (short_link, APP) and WEB.fullmatch(web)
    assert phone.title() == "Your second code"
    [page] = phone.short_link_pages
    assert '<html lang="es">' in page and "Abrir la aplicación" in page  # in the customer's language


def test_without_javascript_the_page_goes_straight_to_the_web(browser, short_link):
    context = browser.new_context(user_agent=PHONE_BROWSER, java_script_enabled=False)
    try:
        page = context.new_page()
        navigations = []
        page.on("request", lambda request: request.is_navigation_request() and navigations.append(request.url))
        context.route("https://shop.example/**", lambda route: route.fulfill(content_type="text/html", body=WEB_PAGE))
        page.goto(short_link)
        page.wait_for_url(WEB)
        [first, web] = navigations  # the <noscript> refresh: no attempt at the app
        assert first == short_link and WEB.fullmatch(web)
    finally:
        context.close()
