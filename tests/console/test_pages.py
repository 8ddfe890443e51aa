"""The console's pages over the real app and both databases: what each role sees and may do,
the login, and the CSRF check. The browser tests (test_browser.py) drive the same pages in
Chromium."""

from __future__ import annotations

import re

import pytest

from orchestrator.auth.keys import create_key
from orchestrator.console.session import COOKIE


async def _key(runtime, role: str, name: str | None = None) -> str:
    async with runtime.sessions() as session, session.begin():
        return (await create_key(session, name or role, role, runtime.clock.now())).key


async def _login(client, key: str):
    return await client.post("/login", data={"key": key})


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def _signup(client, drain, user: str = "ana") -> None:
    await client.post(
        "/v1/identify",
        json={"userId": user, "traits": {"email": f"{user}@example.com", "phone": "+14155550100", "sms_opt_in": True}},
    )
    await client.post("/v1/track", json={"userId": user, "event": "Signed Up"})
    await drain()


async def test_an_open_api_opens_the_console_under_a_banner(client, drain):
    await _signup(client, drain)
    page = await client.get("/")
    assert page.status_code == 200
    assert "No API key exists yet" in page.text
    assert COOKIE in page.cookies  # an anonymous session, for the CSRF token
    for path in ("/journeys", "/messages", "/conversations", "/customers", "/customers/ana", "/journeys/welcome"):
        assert (await client.get(path)).status_code == 200, path


async def test_once_a_key_exists_pages_need_a_login(client, runtime):
    await _key(runtime, "admin")
    page = await client.get("/journeys")
    assert page.status_code == 303 and page.headers["location"] == "/login"


async def test_login_refuses_unknown_and_ingest_keys(client, runtime):
    ingest = await _key(runtime, "ingest")
    assert (await _login(client, "not-a-key")).status_code == 401
    refused = await _login(client, ingest)
    assert refused.status_code == 401 and "ingest" in refused.text


async def test_a_marketer_pauses_a_journey_and_the_api_shows_it_paused(client, runtime):
    key = await _key(runtime, "marketer")
    assert (await _login(client, key)).status_code == 303
    page = await client.get("/journeys")
    assert "Log out" in page.text and "No API key exists yet" not in page.text
    answer = await client.post("/journeys/welcome/pause", data={"csrf": _csrf(page.text)})
    assert answer.status_code == 303
    journeys = (await client.get("/v1/journeys", headers={"Authorization": f"Bearer {key}"})).json()
    assert {j["id"]: j["state"] for j in journeys}["welcome"] == "paused"


async def test_a_reload_from_the_console_lists_the_journeys_and_segments_it_applied(client, runtime):
    await _login(client, await _key(runtime, "marketer"))
    page = await client.get("/journeys")
    assert "Reload journeys and segments from files</button>" in page.text
    answer = await client.post("/journeys/reload", data={"csrf": _csrf(page.text)})
    assert answer.status_code == 200
    notice = re.search(r'<p class="notice" role="status">(.*?)</p>', answer.text).group(1)
    version = runtime.segments.segments["repeat-buyers-90d"].version
    assert "welcome@" in notice and "segments: " in notice and f"repeat-buyers-90d@{version}" in notice


async def test_a_write_without_the_sessions_csrf_token_is_refused(client, runtime):
    key = await _key(runtime, "admin")
    await _login(client, key)
    assert (await client.post("/journeys/welcome/pause", data={"csrf": "forged"})).status_code == 403
    assert (await client.post("/journeys/welcome/pause")).status_code == 403
    journeys = (await client.get("/v1/journeys", headers={"Authorization": f"Bearer {key}"})).json()
    assert {j["id"]: j["state"] for j in journeys}["welcome"] == "active"


async def test_an_ops_key_sees_journeys_without_buttons_and_cannot_pause_through_the_console(client, runtime):
    key = await _key(runtime, "ops")
    await _login(client, key)
    page = await client.get("/journeys")
    assert page.status_code == 200 and "Pause</button>" not in page.text
    refused = await client.post("/journeys/welcome/pause", data={"csrf": _session_csrf(client, runtime)})
    assert refused.status_code == 403 and "needs admin or marketer" in refused.text  # the API's own refusal


def _session_csrf(client, runtime) -> str:
    from orchestrator.console.session import unseal

    return unseal(runtime.settings.secret_key, client.cookies.get(COOKIE)).csrf


async def test_a_revoked_key_ends_the_console_session(client, runtime):
    from orchestrator.auth.keys import revoke_key

    key = await _key(runtime, "admin", "temp")
    await _login(client, key)
    assert (await client.get("/messages")).status_code == 200
    async with runtime.sessions() as session, session.begin():
        await revoke_key(session, "temp", runtime.clock.now())
    page = await client.get("/messages")
    assert page.status_code == 303 and page.headers["location"] == "/login"


async def test_messages_filter_and_export_the_page_as_csv(client, drain):
    await _signup(client, drain, "ana")
    await _signup(client, drain, "ben")
    page = await client.get("/messages", params={"channel": "email"})
    assert page.status_code == 200 and "ana@example.com" in page.text and "ben@example.com" in page.text
    exported = await client.get("/messages.csv", params={"channel": "email", "customer": "ben"})
    lines = exported.text.strip().splitlines()
    assert exported.headers["content-type"].startswith("text/csv")
    assert lines[0].startswith("id,created_at") and len(lines) == 2 and "ben@example.com" in lines[1]


async def test_messages_filter_by_template_on_the_page_and_in_its_csv(client, drain):
    await _signup(client, drain, "ana")
    sent = (await client.get("/v1/messages")).json()["items"]
    assert {m["template"] for m in sent} == {"welcome-email"}  # what the welcome journey sent so far
    page = await client.get("/messages", params={"template": "welcome-email"})
    assert page.status_code == 200 and "ana@example.com" in page.text
    assert 'name="template" value="welcome-email"' in page.text
    assert "template=welcome-email" in page.text  # the CSV link keeps the filter
    none = await client.get("/messages", params={"template": "no-such-template"})
    assert "No message matches." in none.text
    exported = await client.get("/messages.csv", params={"template": "welcome-email"})
    lines = exported.text.strip().splitlines()
    assert len(lines) == 1 + len(sent) and all(",welcome-email," in line for line in lines[1:])
    assert len((await client.get("/messages.csv", params={"template": "other"})).text.strip().splitlines()) == 1


async def test_messages_page_says_more_than_when_the_count_stops_and_still_pages_on(client, drain, monkeypatch):
    from orchestrator.api import customers as listing
    from orchestrator.console import messages as messages_page

    await _signup(client, drain, "ana")
    await _signup(client, drain, "ben")
    monkeypatch.setattr(listing, "TOTAL_COUNTED_UP_TO", 1)
    monkeypatch.setattr(messages_page, "PAGE", 1)
    page = await client.get("/messages")
    assert "More than 1 messages, showing 1–1." in page.text
    assert 'offset=1">Next →' in page.text
    last = await client.get("/messages", params={"offset": 1})
    assert "showing 2–2" in last.text and "Next →" not in last.text and "← Previous" in last.text


async def test_customers_are_found_by_user_id_prefix_email_or_phone(client, drain):
    await _signup(client, drain, "ana")
    await _signup(client, drain, "anabel")
    await client.post(
        "/v1/identify", json={"userId": "ben", "traits": {"email": "ben@example.com", "phone": "+14155550199"}}
    )
    for q, users in (
        ("ana", ["anabel", "ana"]),  # a userId prefix, newest first
        ("ben@example.com", ["ben"]),
        ("+14155550199", ["ben"]),
        ("+1 415 555 0199", ["ben"]),  # the same number as people type it
    ):
        page = await client.get("/customers", params={"q": q})
        assert page.status_code == 200
        assert re.findall(r'<a href="/customers/([^"]+)">', page.text) == users, q
    missing = await client.get("/customers", params={"q": "nobody@example.com"})
    assert "no customer whose userId starts with" in missing.text


async def test_the_overview_chart_by_hour_or_day_of_a_chosen_zone(client, runtime):
    import json

    from tests.conftest import refresh_kpis_as_the_worker_does
    from tests.kpis.test_series import add_messages, at

    runtime.clock.set(at("2026-03-05T12:00:00+00:00"))
    await add_messages(
        runtime,
        ("2026-03-02T22:30:00+00:00", "sms", "delivered"),  # 23:30 in Paris, 2 March
        ("2026-03-02T23:10:00+00:00", "sms", "sent"),  # 00:10 in Paris, 3 March
    )
    await refresh_kpis_as_the_worker_does(client)  # UTC days come from the rollups

    def chart(page) -> dict:
        assert page.status_code == 200, page.text
        return json.loads(re.search(r'id="chart-data">(.*?)</script>', page.text).group(1))

    window = {"since": "2026-03-02", "until": "2026-03-03"}
    paris = chart(await client.get("/", params={**window, "zone": "Europe/Paris"}))
    assert paris["labels"] == ["2026-03-02", "2026-03-03"] and paris["channels"]["sms"]["sent"] == [1, 1]
    utc = chart(await client.get("/", params=window))
    assert utc["channels"]["sms"]["sent"] == [2, 0]
    hours = chart(await client.get("/", params={**window, "zone": "Europe/Paris", "granularity": "hour"}))
    assert len(hours["labels"]) == 48 and hours["labels"][23:25] == ["03-02 23:00", "03-03 00:00"]
    assert hours["channels"]["sms"]["sent"][23:25] == [1, 1] and sum(hours["channels"]["sms"]["sent"]) == 2

    refused = await client.get("/", params={**window, "zone": "Europe/Atlantis"})
    assert refused.status_code == 422 and "zone" in refused.text and "IANA" in refused.text


async def test_a_session_cookie_cannot_be_forged_or_read(client, runtime):
    from orchestrator.console.session import seal, unseal

    key = await _key(runtime, "admin")
    cookie, _ = seal(runtime.settings.secret_key, key, "admin", "admin")
    assert key not in cookie  # encrypted, not merely signed
    assert unseal("another secret", cookie) is None
    assert unseal(runtime.settings.secret_key, cookie[:-4] + "AAAA") is None
    client.cookies.set(COOKIE, cookie[:-4] + "AAAA")
    assert (await client.get("/messages")).status_code == 303


@pytest.mark.parametrize(
    "referer, expected",
    [
        ("https://evil.example/x", "/messages"),
        ("//evil.example/x", "/messages"),
        ("http://test/messages?status=failed", "/messages?status=failed"),
    ],
)
def test_going_back_after_a_retry_stays_on_this_site(referer, expected):
    from orchestrator.console.context import same_site_path

    assert same_site_path(referer, "/messages", "test") == expected
