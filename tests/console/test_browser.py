"""The console in a real browser: Debian's Chromium driven by Playwright, against the service
running as `orchestrator serve` runs it (API, worker and the bundled fake providers in one
process, on a port of its own).

Screenshots land in `ORCHESTRATOR_SCREENSHOTS_DIR` when it is set (docs/console.md uses them).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from twilio.request_validator import RequestValidator

from orchestrator.channels.configure import twilio_auth_token
from orchestrator.config import PROJECT_ROOT, Settings

CHROMIUM = os.environ.get("ORCHESTRATOR_CHROMIUM", "/usr/bin/chromium")
# As root in a container Chromium needs --no-sandbox; the rest keep it off a network it cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SHOTS = os.environ.get("ORCHESTRATOR_SCREENSHOTS_DIR")

pytestmark = [
    pytest.mark.acceptance,  # a real browser and a CLI process against the service on a real port
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and not os.environ.get("CI"),
        reason=f"no Chromium at {CHROMIUM}: scripts/bootstrap.sh test installs it (as root)",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """`orchestrator serve` in a thread: uvicorn, the app, its worker loop and fakes."""

    def __init__(self, tmp: Path, **settings: object) -> None:
        from orchestrator.api.app import create_app

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = Settings(
            database_url=f"sqlite:///{tmp / 'console.db'}",
            host="127.0.0.1",
            port=self.port,
            public_base_url=self.url,
            journeys_dir=PROJECT_ROOT / "journeys",
            templates_dir=PROJECT_ROOT / "templates",
            worker_poll_seconds=0.2,
            kpi_rollup_refresh_seconds=0.5,
            api_key_cache_seconds=0,
            **settings,
        )
        self.app = create_app(self.settings, run_worker=True)
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Service:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the service did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _until(check, what: str, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with Service(tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture(scope="module")
def admin_key(service) -> str:
    with httpx.Client(base_url=service.url) as http:
        # Seed a run while the API is still open: sign-ups with SMS consent, then an abandoned cart.
        for n in range(6):
            user = f"shopper-{n}"
            http.post(
                "/v1/identify",
                json={
                    "userId": user,
                    "traits": {"email": f"{user}@example.com", "phone": f"+1415555{n:04d}", "sms_opt_in": True},
                },
            ).raise_for_status()
            http.post("/v1/track", json={"userId": user, "event": "Signed Up"}).raise_for_status()
        # Sent, or already delivered: the fake SendGrid reports each one delivered, signed, moments later.
        _until(
            lambda: (
                sum(
                    http.get("/v1/messages", params={"channel": "email", "status": status}).json()["total"]
                    for status in ("sent", "delivered")
                )
                >= 6
            ),
            "the welcome e-mails",
        )
        # KPI reads only read: wait for the worker's rollup refresh to count them.
        _until(
            lambda: any(
                r["channel"] == "email" and r["sent"] >= 6
                for r in http.get("/v1/kpis", params={"group_by": "channel"}).json()["rows"]
            ),
            "the KPI rollups to count the welcome e-mails",
        )
    # The first key, as an admin makes it (`orchestrator keys create`): from now on the console needs a login.
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "keys", "create", "--name", "browser-admin", "--role", "admin"],
        env={**os.environ, "DATABASE_URL": service.settings.database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, service, admin_key):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(service.url + "/")
    assert page.url.endswith("/login")  # a key exists: the console asks for one
    page.fill("#key", admin_key)
    page.click("button[type=submit]")
    page.wait_for_url(service.url + "/")
    yield page
    context.close()


def _shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def test_the_overview_chart_shows_the_seeded_run(page, service, admin_key):
    page.wait_for_selector("body[data-charts-ready=true]")
    sent_in_chart = page.evaluate("""() => document.querySelector('canvas[data-chart=sent]').chart.data.datasets
        .filter(d => d.label === 'email').reduce((n, d) => n + d.data.reduce((a, b) => a + b, 0), 0)""")
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {admin_key}"}) as http:
        rows = http.get("/v1/kpis", params={"group_by": "channel"}).json()["rows"]
    assert sent_in_chart == {r["channel"]: r["sent"] for r in rows}["email"] >= 6
    assert page.locator("[data-kpi='Delivery rate'] .value").inner_text() != ""
    _shot(page, "overview")
    page.select_option("select[name=granularity]", "hour")
    page.fill("input[name=zone]", "Europe/Paris")
    page.click("form.filters button")
    page.wait_for_selector("body[data-charts-ready=true]")
    labels = page.evaluate("() => document.querySelector('canvas[data-chart=sent]').chart.data.labels")
    assert len(labels) in (14 * 24 - 1, 14 * 24, 14 * 24 + 1) and labels[0].endswith(
        " 00:00"
    )  # a fortnight of Paris hours
    hourly = page.evaluate("""() => document.querySelector('canvas[data-chart=sent]').chart.data.datasets
        .filter(d => d.label === 'email').reduce((n, d) => n + d.data.reduce((a, b) => a + b, 0), 0)""")
    assert hourly == sent_in_chart  # the seeded run is well inside the fortnight, whichever zone


def test_a_journey_paused_from_the_page_is_paused_in_the_api(page, service, admin_key):
    page.click("nav >> text=Journeys")
    row = page.locator("tr[data-journey=welcome]")
    row.locator("button", has_text="Pause").click()
    page.wait_for_selector("tr[data-journey=welcome] .state.paused")
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {admin_key}"}) as http:
        states = {j["id"]: j["state"] for j in http.get("/v1/journeys").json()}
    assert states["welcome"] == "paused"
    _shot(page, "journeys")
    page.locator("tr[data-journey=welcome]").locator("button", has_text="Resume").click()
    page.wait_for_selector("tr[data-journey=welcome] .state.active")


def test_an_inbound_sms_appears_in_the_open_inbox_and_an_agent_reply_reaches_the_fake(page, service, admin_key):
    page.click("nav >> text=Conversations")
    page.wait_for_selector("#live-state.on")  # the event stream is connected
    sender, body = "+14155550003", "Do you ship to Canada?"
    form = {
        "MessageSid": "SM" + "c0" * 16,
        "SmsSid": "SM" + "c0" * 16,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
    }
    url = service.url + "/webhooks/twilio/inbound"
    # The fake's token is the one the started service generated and keeps in its database.
    signature = RequestValidator(twilio_auth_token(service.app.state.runtime.settings)).compute_signature(url, form)
    httpx.post(url, data=form, headers={"X-Twilio-Signature": signature}).raise_for_status()
    # No reload: the inbox updates from the event stream.
    page.wait_for_selector("#inbox li[data-conversation] >> text=shopper-3", timeout=15_000)
    page.click("#inbox li[data-conversation] a")
    page.wait_for_selector(f".bubbles li.inbound >> text={body}")
    page.fill(".reply textarea", "Yes, in 3-5 days.")
    page.click(".reply button")
    page.wait_for_selector(".bubbles li.outbound >> text=Yes, in 3-5 days.")
    _shot(page, "conversations")
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {admin_key}"}) as http:
        _until(
            lambda: any(
                m["body"] == "Yes, in 3-5 days." and m["to"] == sender
                for m in http.get("/_fake/twilio/_admin/messages").json()
            ),
            "the agent's reply at the fake Twilio",
        )


def test_messages_and_customers_pages_in_the_browser(page, service):
    page.click("nav >> text=Messages")
    page.select_option("select[name=channel]", "email")
    page.click("form.filters button")
    assert page.locator("tr[data-message]").count() >= 6
    _shot(page, "messages")
    page.select_option("select[name=channel]", "")
    page.fill("input[name=template]", "welcome-email")
    page.click("form.filters button")
    templates = page.locator("tr[data-message]").count()
    assert templates >= 1 and page.locator("a[download]").get_attribute("href").count("template=welcome-email") == 1
    page.click("nav >> text=Customers")
    page.fill("input[name=q]", "shopper-1@example.com")  # by e-mail, not only by userId
    page.click("form.filters button")
    assert page.locator("table.found tbody tr").count() == 1
    page.click('table.found a >> text="shopper-1"')
    page.wait_for_selector("h1 >> text=shopper-1")
    assert page.locator("tr[data-consent=sms]").inner_text().startswith("sms")
    assert page.locator(".timeline li").count() >= 2
    _shot(page, "customer")


def test_a_share_link_opens_without_a_login_and_stops_when_revoked(page, browser, service):
    page.click("nav >> text=Reports")
    page.click("tr[data-report=weekly-kpis] a")
    page.click("text=Create a share link")
    link = page.locator("#new-share-link").get_attribute("href")
    _shot(page, "report")
    stranger = browser.new_context()  # no session cookie: someone the link was sent to
    try:
        shared = stranger.new_page()
        shared.goto(link)
        assert shared.locator("h1").inner_text() == "Weekly KPIs"
        assert shared.locator(".tile[data-kpi=sent]").count() == 1
        page.locator("tr[data-link] button", has_text="Revoke").first.click()
        page.wait_for_selector("tr[data-link] >> text=revoked")
        assert shared.goto(link).status == 404
        assert "revoked" in shared.locator("[role=alert]").inner_text()
    finally:
        stranger.close()


def test_a_segments_size_chart_draws_its_history(page, service, admin_key):
    page.click("nav >> text=Segments")
    page.click("tr[data-segment=french-opted-in-buyers-this-year] a")
    page.wait_for_selector("body[data-charts-ready=true]")
    drawn = page.evaluate("() => document.querySelector('canvas[data-size-chart]').chart.data.datasets[0].data")
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {admin_key}"}) as http:
        detail = http.get("/v1/segments/french-opted-in-buyers-this-year").json()
        preview = http.get("/v1/segments/french-opted-in-buyers-this-year/preview").json()
    history = [s["members"] for s in detail["size_history"]]
    assert drawn and history[: len(drawn)] == drawn  # a sweep may land between the page and the API read
    assert page.locator("[data-kpi=matching] .value").inner_text() == str(preview["count"])
    _shot(page, "segment")
