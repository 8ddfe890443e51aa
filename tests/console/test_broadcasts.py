"""The console's Broadcasts page over the real app: list and detail, role-gated buttons
with the session's CSRF token, moves through the same API (and state rules) as curl."""

from __future__ import annotations

from orchestrator.broadcasts.sending import advance_broadcasts
from tests.broadcasts.helpers import add_customers, body
from tests.console.test_pages import _csrf, _key, _login, _session_csrf


async def _draft(client, runtime, key: str, users: list[str]) -> None:
    answer = await client.post("/v1/broadcasts", json=body("sale", users), headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 201, answer.text


async def test_a_marketer_schedules_from_the_list_and_sees_the_kpis_on_the_detail_page(client, runtime, drain):
    key = await _key(runtime, "marketer")
    await _login(client, key)
    await _draft(client, runtime, key, await add_customers(runtime, 4))
    page = await client.get("/broadcasts")
    assert page.status_code == 200 and 'href="/broadcasts"' in page.text and 'data-broadcast="sale"' in page.text
    assert 'action="/broadcasts/sale/schedule"' in page.text
    moved = await client.post("/broadcasts/sale/schedule", data={"csrf": _csrf(page.text)})
    assert moved.status_code == 303 and moved.headers["location"] == "/broadcasts/sale?notice=sale+is+scheduled"
    await advance_broadcasts(runtime)
    await drain()
    detail = await client.get("/broadcasts/sale")
    assert detail.status_code == 200 and "sending" in detail.text
    assert 'action="/broadcasts/sale/pause"' in detail.text
    assert '<tr><th>sent</th><td class="n">4</td></tr>' in detail.text


async def test_a_move_the_state_forbids_shows_the_apis_409(client, runtime):
    key = await _key(runtime, "admin")
    await _login(client, key)
    await _draft(client, runtime, key, ["c0"])
    refused = await client.post("/broadcasts/sale/resume", data={"csrf": _session_csrf(client, runtime)})
    assert refused.status_code == 409 and "it is draft" in refused.text


async def test_ops_sees_no_buttons_and_a_forged_token_moves_nothing(client, runtime):
    admin = await _key(runtime, "admin")
    await _draft(client, runtime, admin, ["c0"])
    await _login(client, await _key(runtime, "ops"))
    page = await client.get("/broadcasts")
    assert page.status_code == 200 and "Schedule</button>" not in page.text
    refused = await client.post("/broadcasts/sale/schedule", data={"csrf": _session_csrf(client, runtime)})
    assert refused.status_code == 403 and "needs admin or marketer" in refused.text
    await _login(client, admin)
    assert (await client.post("/broadcasts/sale/schedule", data={"csrf": "forged"})).status_code == 403
    listed = (await client.get("/v1/broadcasts", headers={"Authorization": f"Bearer {admin}"})).json()
    assert {b["id"]: b["state"] for b in listed}["sale"] == "draft"
