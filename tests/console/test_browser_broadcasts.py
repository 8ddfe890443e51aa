"""The Segments and Broadcasts pages in a real browser (Debian's Chromium driven by Playwright):
the walkthrough of docs/broadcasts.md on the service as `orchestrator serve` runs it, on a
simulated clock that starts the day before Black Friday. The fashion store's customers are
imported and their orders sent; the Segments page previews the Black Friday audience; the
Broadcasts page schedules, pauses and resumes the shipped broadcast, shows it sending (the
Paris recipients at 10:00 there) and then done (Toronto's too), and cancels a draft.

Screenshots land in `ORCHESTRATOR_SCREENSHOTS_DIR` when it is set (docs/console.md uses them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from orchestrator.config import PROJECT_ROOT
from tests.console.test_browser import CHROMIUM, CHROMIUM_ARGS, Service, _shot

pytestmark = [
    pytest.mark.acceptance,  # a real browser and a CLI process against the service on a real port
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}: scripts/bootstrap.sh test installs it"
    ),
]

EXAMPLES = PROJECT_ROOT / "examples"
AUDIENCE = "french-opted-in-buyers-this-year"
# From 12:00 UTC the day before: 08:00 UTC on Black Friday, then 10:00 UTC (10:00 in Paris
# has passed, 10:00 in Toronto has not), then 15:00 UTC, 10:00 in Toronto.
TO_BLACK_FRIDAY_MORNING = 71940
TO_AFTER_PARIS = 7200
TO_AFTER_TORONTO = 18000


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """The service with the example customers and orders, and an admin key (after which the
    console asks for one)."""
    tmp = tmp_path_factory.mktemp("broadcasts")
    with Service(tmp, simulated_clock=True, simulated_clock_start="2027-11-25T12:00:00+00:00") as service:
        with httpx.Client(base_url=service.url, timeout=60) as http:
            http.post(
                "/v1/customers/import",
                params={"file_name": "fashion-customers.csv"},
                content=(EXAMPLES / "fashion-customers.csv").read_bytes(),
                headers={"content-type": "text/csv"},
            ).raise_for_status()
            orders = json.loads((EXAMPLES / "fashion-orders.json").read_text())
            http.post("/v1/batch", json=orders).raise_for_status()
            http.post("/v1/admin/clock/advance", json={"seconds": 60}).raise_for_status()
        key = subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestrator.cli",
                "keys",
                "create",
                "--name",
                "browser-admin",
                "--role",
                "admin",
            ],
            env={**os.environ, "DATABASE_URL": service.settings.database_url},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        yield service, key


@pytest.fixture
def page(shop):
    from playwright.sync_api import sync_playwright

    service, key = shop
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(service.url + "/login")
        page.fill("#key", key)
        page.click("button[type=submit]")
        page.wait_for_url(service.url + "/")
        yield page
        browser.close()


def _api(shop) -> httpx.Client:
    service, key = shop
    return httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _cells(page, row: str) -> list[str]:
    return [cell.strip() for cell in page.locator(f"{row} td").all_inner_texts()]


def test_the_segments_page_previews_the_black_friday_audience(page, shop):
    page.click("nav >> text=Segments")
    listed = page.locator(f"tr[data-segment={AUDIENCE}]")
    assert "3" in _cells(page, f"tr[data-segment={AUDIENCE}]")  # members, as the worker counted them
    _shot(page, "segments")
    listed.locator("a").click()
    page.wait_for_selector("#preview")
    assert page.locator("[data-kpi=matching] .value").inner_text() == "3"
    sample = page.locator("#preview tr[data-customer]")
    assert sorted(sample.evaluate_all("rows => rows.map(r => r.dataset.customer)")) == ["hugo", "lea", "marc"]
    assert page.locator("#preview tr[data-customer=marc]").inner_text().split("\t")[-1].strip() == "America/Toronto"


def test_the_broadcasts_page_schedules_pauses_resumes_and_shows_the_black_friday_sms_sent(page, shop):
    with _api(shop) as http:
        page.click("nav >> text=Broadcasts")
        row = "tr[data-broadcast=black-friday-sms]"
        assert page.locator(f"{row} .state").inner_text() == "draft"
        page.locator(row).locator("button", has_text="Schedule").click()
        page.wait_for_selector("[role=status] >> text=black-friday-sms is scheduled")
        page.locator("button", has_text="Pause").click()
        page.wait_for_selector("[role=status] >> text=black-friday-sms is paused")
        assert http.get("/v1/broadcasts/black-friday-sms").json()["state"] == "paused"
        page.locator("button", has_text="Resume").click()
        page.wait_for_selector("[role=status] >> text=black-friday-sms is scheduled")

        http.post("/v1/admin/clock/advance", json={"seconds": TO_BLACK_FRIDAY_MORNING}).raise_for_status()
        http.post("/v1/admin/clock/advance", json={"seconds": TO_AFTER_PARIS}).raise_for_status()
        page.click("nav >> text=Broadcasts")
        # sending: lea and hugo had theirs at 10:00 in Paris; marc's is due at 10:00 in Toronto
        assert page.locator(f"{row} .state").inner_text() == "sending"
        recipients, made, sent, failed = _cells(page, row)[4:8]
        assert (recipients, made, sent, failed) == ("3", "2", "2", "0")
        _shot(page, "broadcasts")

        http.post("/v1/admin/clock/advance", json={"seconds": TO_AFTER_TORONTO}).raise_for_status()
        page.reload()
        assert page.locator(f"{row} .state").inner_text() == "done"
        assert _cells(page, row)[4:8] == ["3", "3", "3", "0"]
        page.locator(row).locator("a").click()
        page.wait_for_selector("h1 >> text=Black Friday SMS")
        kpis = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('table[data-kpis] tr')]
            .map(tr => [tr.querySelector('th').textContent.trim(), tr.querySelector('td').textContent.trim()]))""")
        assert (kpis["messages"], kpis["sent"], kpis["failed"]) == ("3", "3", "0"), kpis
        assert page.locator("button").filter(has_text="Pause").count() == 0  # done: nothing to do
        _shot(page, "broadcast")


def test_a_draft_cancelled_from_the_page_is_cancelled_in_the_api(page, shop):
    with _api(shop) as http:
        draft = {
            "id": "vip-preview",
            "audience": {"user_ids": ["lea"]},
            "channel": "sms",
            "template": "black-friday-sms",
            "vars": {"discount_code": "VIP20"},
            "schedule": {"at": "2027-12-01T09:00:00Z"},
        }
        http.post("/v1/broadcasts", json=draft).raise_for_status()
        page.click("nav >> text=Broadcasts")
        page.locator("tr[data-broadcast=vip-preview]").locator("button", has_text="Cancel").click()
        page.wait_for_selector("[role=status] >> text=vip-preview is cancelled")
        assert http.get("/v1/broadcasts/vip-preview").json()["state"] == "cancelled"
