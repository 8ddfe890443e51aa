"""Share links: a report opens without a login, read-only, until it expires or is revoked;
a link cannot be guessed, altered or forged."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.auth.keys import create_key
from orchestrator.config import PROJECT_ROOT


@pytest.fixture
async def marketer(runtime) -> dict[str, str]:
    async with runtime.sessions() as session, session.begin():
        key = (await create_key(session, "ana", "marketer", runtime.clock.now())).key
    return {"Authorization": f"Bearer {key}"}


async def _share(client, headers, **body) -> dict:
    answer = await client.post("/v1/reports/weekly-kpis/links", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def test_a_share_link_opens_without_a_login_until_revoked(client, marketer, runtime):
    assert runtime.settings.reports_dir == PROJECT_ROOT / "reports"
    link = await _share(client, marketer, window_days=14)
    path = "/" + link["url"].split("/", 3)[3]
    assert (await client.get("/v1/reports")).status_code == 401  # the API needs a key now...
    page = await client.get(path)  # ...the link does not
    assert page.status_code == 200 and "Weekly KPIs" in page.text and "last 14 days" in page.text
    assert page.headers["cache-control"] == "no-store" and "noindex" in page.headers["x-robots-tag"]
    assert "<form" not in page.text  # read-only
    revoked = await client.post(f"/v1/reports/links/{link['id']}/revoke", headers=marketer)
    assert revoked.json()["revoked_at"] is not None
    gone = await client.get(path)
    assert gone.status_code == 404 and "revoked" in gone.text


async def test_a_share_link_expires(client, marketer, runtime):
    link = await _share(client, marketer, expires_in_days=2)
    path = "/" + link["url"].split("/", 3)[3]
    assert (await client.get(path)).status_code == 200
    runtime.clock.advance(timedelta(days=2))
    expired = await client.get(path)
    assert expired.status_code == 404 and "expired" in expired.text


async def test_an_altered_or_forged_link_is_refused(client, marketer):
    link = await _share(client, marketer)
    link_id, secret, signature = link["url"].rsplit("/", 1)[1].split(".")
    forged = [
        f"{link_id}.{secret}.{'0' * 32}",
        f"{int(link_id) + 1}.{secret}.{signature}",
        f"{link_id}.{secret[:-1]}x.{signature}",
        f"{link_id}.{secret}",
        "not-a-link",
        "1.a.b",
    ]
    for token in forged:
        page = await client.get(f"/r/{token}")
        assert page.status_code == 404 and "not a report link" in page.text, token
    listed = (await client.get("/v1/reports/weekly-kpis/links", headers=marketer)).json()
    assert [entry["url"] for entry in listed] == [None]  # the secret is shown once, never listed


async def test_only_writers_share_and_the_api_names_bad_fields(client, runtime, marketer):
    async with runtime.sessions() as session, session.begin():
        ops = (await create_key(session, "olga", "ops", runtime.clock.now())).key
    refused = await client.post("/v1/reports/weekly-kpis/links", json={}, headers={"Authorization": f"Bearer {ops}"})
    assert refused.status_code == 403
    bad = await client.post("/v1/reports/weekly-kpis/links", json={"expires_in_days": 0}, headers=marketer)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "expires_in_days"]
    assert (await client.post("/v1/reports/nope/links", json={}, headers=marketer)).status_code == 404


async def test_report_figures_through_the_api(client, marketer, drain):
    await client.post("/v1/identify", json={"userId": "u1", "traits": {"email": "u1@example.com"}}, headers=marketer)
    listed = (await client.get("/v1/reports", headers=marketer)).json()
    assert {r["id"] for r in listed["reports"]} == {"weekly-kpis", "abandoned-cart-sms-daily"} and listed[
        "errors"
    ] == []
    figures = (await client.get("/v1/reports/weekly-kpis/figures", headers=marketer)).json()
    assert [f["kpi"] for f in figures["figures"]][:2] == ["sent", "delivery_rate"]
    assert len(figures["days"]) == 7  # a weekly report's period
