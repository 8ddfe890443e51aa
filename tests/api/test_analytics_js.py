"""Segment's analytics.js (the vendored @segment/analytics-next, as the service serves it) in
Debian's Chromium, on a shop's pages served from another origin, sending to the service as
`orchestrator serve` runs it; then the worker's site fold turns what it sent into visits.

The shop's pages carry the snippet docs/website-kpis.md tells a site owner to paste, with
this run's addresses. Every request the pages make is to the shop or the service: anything
else (cdn.segment.com, api.segment.io) is aborted and fails the test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.console.test_browser import (
    CHROMIUM,
    Service,
    _until,
    browser,  # noqa: F401 (a fixture)
)

pytestmark = [
    pytest.mark.acceptance,  # a real browser, the service and a shop on real ports
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and not os.environ.get("CI"),
        reason=f"no Chromium at {CHROMIUM}: scripts/bootstrap.sh test installs it (as root)",
    ),
]

# The snippet of docs/website-kpis.md, for this run's service and key; under /batched/, with
# analytics.js's batching delivery (to /v1/b), one call a batch.
SNIPPET = """<script src="{service}/site/analytics-next.min.js"></script>
<script>
  window.analytics = AnalyticsNext.AnalyticsBrowser.load({{
    writeKey: "{key}",
    cdnSettings: {{
      integrations: {{ "Segment.io": {{ apiKey: "{key}", apiHost: "{api_host}/v1", protocol: "{protocol}"{delivery} }} }},
      metrics: {{ sampleRate: 0 }},
    }},
  }})
  analytics.page()
</script>"""

PAGES = {
    "index.html": '<h1>Boots and more</h1><a id="boots" href="boots.html">Boots</a>',
    "boots.html": """<h1>Boots</h1>
<button id="login" onclick="analytics.identify('shopper-1', {email: 'ann@example.com'})">Log in</button>
<button id="buy" onclick="analytics.track('Order Completed', {order_id: 'A-1', revenue: 80})">Buy</button>""",
}
# The shop's server renders each logged-in customer's hash into the page (docs/website-kpis.md);
# here `{bo_hash}` is filled in by `Shop.write_pages` as that server would. A page's identify
# without one (a copied key, a userId typed in the console) changes no address or consent.
ACCOUNT = """<h1>Your account</h1>
<button id="verified" onclick="analytics.identify('shopper-2',
  {{email: 'bo@example.com', phone: '+14155550123', sms_opt_in: true, plan: 'gold'}},
  {{context: {{userHash: '{bo_hash}'}}}})">Log in as Bo</button>
<button id="unverified" onclick="analytics.identify('shopper-2',
  {{email: 'mallory@evil.example', sms_opt_in: false, plan: 'platinum'}})">Claim Bo</button>"""
IDENTITY_SECRET = "the-shop-servers-identity-secret-0123456789"
LANDING = "/index.html?utm_source=instagram&utm_medium=social&utm_campaign=spring-boots"
BATCHING = ', deliveryStrategy: { strategy: "batching", config: { size: 1 } }'


class Shop:
    """A static site on a port of its own: another origin than the service's."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietFiles, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def write_pages(self, service: Service, key: str) -> None:
        (self.folder / "batched").mkdir()
        for folder, delivery in ((self.folder, ""), (self.folder / "batched", BATCHING)):
            snippet = SNIPPET.format(
                service=service.url, key=key, api_host=service.url.split("://")[1], protocol="http", delivery=delivery
            )
            bo_hash = hmac.new(IDENTITY_SECRET.encode(), b"shopper-2", hashlib.sha256).hexdigest()
            for name, body in {**PAGES, "account.html": ACCOUNT.format(bo_hash=bo_hash)}.items():
                (folder / name).write_text(f"<!doctype html><html><head>{snippet}</head><body>{body}</body></html>")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _create_key(service: Service, role: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "keys", "create", "--name", f"site-{role}", "--role", role],
        env={**os.environ, "DATABASE_URL": service.settings.database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The service, with the shop listed in ORCHESTRATOR_SITE_ORIGINS and the shop's identity
    secret; the shop, with a key of the site role; a copy of the
    shop on an origin not listed (a stranger who copied the page, key and all); an admin key."""
    shop, stranger = Shop(tmp_path_factory.mktemp("shop")), Shop(tmp_path_factory.mktemp("stranger"))
    try:
        with Service(
            tmp_path_factory.mktemp("service"), site_origins=[shop.url], site_identity_secret=IDENTITY_SECRET
        ) as service:
            site_key = _create_key(service, "site")
            shop.write_pages(service, site_key)
            stranger.write_pages(service, site_key)
            yield service, shop, stranger, _create_key(service, "admin")
    finally:
        shop.close()
        stranger.close()


@pytest.fixture
def open_page(browser, site):  # noqa: F811 (the fixture imported above)
    """Pages in fresh browser profiles (each its own analytics.js cookie: its own anonymousId)
    that may talk to the shops and the service only."""
    service, shop, stranger, _ = site
    contexts, elsewhere = [], []

    def only_ours(route) -> None:
        if route.request.url.startswith((service.url + "/", shop.url + "/", stranger.url + "/")):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    def new_page():
        contexts.append(browser.new_context())
        contexts[-1].route("**/*", only_ours)
        return contexts[-1].new_page()

    yield new_page
    for context in contexts:
        context.close()
    assert elsewhere == []  # no CDN, no Segment: the library and the events stay between shop and service


def _sent(page, path: str, action) -> None:
    """Do `action` and wait for analytics.js's call to `path` to be answered: it must be accepted."""
    with page.expect_request(lambda request: request.url.endswith(path) and request.method == "POST") as sent:
        action()
    response = sent.value.response()  # None when the request failed (a refused preflight)
    assert response is not None, f"{path} failed: {sent.value.failure}"
    assert response.status == 200, response.text()


def _visits(service: Service) -> list[tuple]:
    database = service.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        return connection.execute(
            """SELECT visits.visitor, customers.user_id, visits.pages, visits.landing_path, visits.utm_source,
                      visits.utm_medium, visits.utm_campaign, visits.channel, visits.source,
                      visits.converted_at IS NOT NULL
               FROM visits LEFT JOIN customers ON customers.id = visits.customer_id ORDER BY visits.started_at"""
        ).fetchall()


FIGURES = ("visits", "visitors", "bounces", "pages", "converted", "conversion_rate", "bounce_rate", "pages_per_visit")


def _folded(service: Service, admin_key: str, *sources: str) -> dict[str, dict] | None:
    """The site KPIs of `sources` once the worker has folded a visit from each (it folds new
    page calls every kpi_rollup_refresh_seconds). Time on site is left out: it is how long the
    browser took."""
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {admin_key}"}) as http:
        response = http.get("/v1/kpis/site", params={"group_by": "source"})
        response.raise_for_status()
    rows = {row["source"]: {name: row[name] for name in FIGURES} for row in response.json()["rows"]}
    return rows if all(source in rows for source in sources) else None


def test_analytics_js_calls_from_a_shop_become_visits_a_converted_one_and_a_bounce(open_page, site):
    service, shop, _, admin_key = site
    # Ann lands from an Instagram post, looks at the boots, logs in and buys.
    ann = open_page()
    _sent(ann, "/v1/p", lambda: ann.goto(shop.url + LANDING))
    _sent(ann, "/v1/p", lambda: ann.click("#boots"))
    _sent(ann, "/v1/i", lambda: ann.click("#login"))
    _sent(ann, "/v1/t", lambda: ann.click("#buy"))
    # Someone else arrives on the boots from a search page and leaves.
    passer_by = open_page()
    _sent(
        passer_by, "/v1/p", lambda: passer_by.goto(shop.url + "/boots.html", referer="http://search.example/?q=boots")
    )

    by_source = _until(lambda: _folded(service, admin_key, "instagram", "search.example"), "the worker's fold")
    assert by_source["instagram"] == {
        **{"visits": 1, "visitors": 1, "bounces": 0, "pages": 2, "converted": 1},
        **{"conversion_rate": 100.0, "bounce_rate": 0.0, "pages_per_visit": 2.0},
    }
    assert by_source["search.example"] == {
        **{"visits": 1, "visitors": 1, "bounces": 1, "pages": 1, "converted": 0},
        **{"conversion_rate": 0.0, "bounce_rate": 100.0, "pages_per_visit": 1.0},
    }
    ann_id, passer_by_id = (page.evaluate("() => analytics.instance.user().anonymousId()") for page in (ann, passer_by))
    assert ann_id != passer_by_id  # two browser profiles, two visitors
    all_visits = _visits(service)
    assert [visit[-2] for visit in all_visits].count("instagram") == 1
    visits = {visit[-2]: visit for visit in all_visits}  # by source
    customer_id = visits["instagram"][0].removeprefix("c:")
    # Ann's anonymous views before the login are joined to the customer: one visit of hers.
    assert visits["instagram"] == (
        *(f"c:{customer_id}", "shopper-1", 2, "/index.html"),
        *("instagram", "social", "spring-boots", "social", "instagram", 1),
    )
    assert visits["search.example"] == (
        *(f"a:{passer_by_id}", None, 1, "/boots.html"),
        *(None, None, None, "referral", "search.example", 0),
    )


def test_analytics_js_batching_delivery_posts_to_v1_b(open_page, site):
    service, shop, _, admin_key = site
    reader = open_page()
    landing = "/batched/index.html?utm_source=newsletter&utm_medium=newsletter"
    _sent(reader, "/v1/b", lambda: reader.goto(shop.url + landing))
    _sent(reader, "/v1/b", lambda: reader.click("#boots"))

    def both_pages_folded():  # a fold that began between the two calls counts the first alone
        rows = _folded(service, admin_key, "newsletter")
        return rows if rows and rows["newsletter"]["pages"] == 2 else None

    newsletter = _until(both_pages_folded, "the worker's fold")["newsletter"]
    assert (newsletter["visits"], newsletter["bounces"]) == (1, 0)  # one visit of two pages
    [visit] = [visit for visit in _visits(service) if visit[-2] == "newsletter"]
    assert visit[2:4] == (2, "/batched/index.html")


def test_a_copy_of_the_page_on_a_site_not_listed_sends_nothing(open_page, site):
    service, _, stranger, _ = site
    page = open_page()
    # analytics.js's call carries its key as Basic, so the browser asks first; the service says no.
    with page.expect_event("requestfailed", lambda request: request.url.endswith("/v1/p")):
        page.goto(stranger.url + "/index.html")
    database = service.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        [[from_stranger]] = connection.execute(
            "SELECT count(*) FROM events WHERE context LIKE ?", (f"%{stranger.url}%",)
        ).fetchall()
    assert from_stranger == 0


def test_identify_changes_addresses_and_consent_only_with_the_hash_the_shops_server_rendered(open_page, site):
    service, shop, _, _ = site
    bo = open_page()
    _sent(bo, "/v1/p", lambda: bo.goto(shop.url + "/account.html"))
    _sent(bo, "/v1/i", lambda: bo.click("#verified"))
    _sent(bo, "/v1/i", lambda: bo.click("#unverified"))  # accepted, so analytics.js keeps no backlog
    database = service.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        customer = connection.execute(
            "SELECT id, email, phone, json_extract(traits, '$.plan') FROM customers WHERE user_id = 'shopper-2'"
        ).fetchone()
        consents = connection.execute(
            "SELECT channel, status FROM consents WHERE customer_id = ? ORDER BY id", (customer[0],)
        ).fetchall()
        identifies = connection.execute(
            "SELECT context, withheld_traits FROM events WHERE type = 'identify' AND customer_id = ? ORDER BY id",
            (customer[0],),
        ).fetchall()
    # The verified call set Bo's addresses and opt-in; the other changed only the plan.
    assert customer[1:] == ("bo@example.com", "+14155550123", "platinum")
    assert consents == [("sms", "opted_in")]
    [(verified_context, verified_withheld), (unverified_context, unverified_withheld)] = identifies
    # analytics.js puts `options.context` into the call's context, where the service reads it.
    assert (
        json.loads(verified_context)["userHash"]
        == hmac.new(IDENTITY_SECRET.encode(), b"shopper-2", hashlib.sha256).hexdigest()
    )
    assert verified_withheld is None
    assert "userHash" not in json.loads(unverified_context)
    # analytics.js sends the traits it remembers of this user (localStorage) with each identify:
    # Bo's phone came along in the second call too, and was withheld with the rest.
    assert json.loads(unverified_withheld) == ["email", "phone", "sms_opt_in"]
