"""The walkthrough in docs/broadcasts.md, step by step through the API: import the example
customers, preview the Black Friday audience, schedule the shipped broadcast, and watch it go
out at 10:00 in each recipient's zone while a competing abandoned-cart SMS is capped."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import httpx
import pytest

from orchestrator.api.app import create_app
from orchestrator.clock import SimulatedClock
from orchestrator.config import PROJECT_ROOT
from orchestrator.engine.loop import WorkerLoop
from orchestrator.startup import build_runtime
from tests.conftest import _reset, make_settings

EXAMPLES = PROJECT_ROOT / "examples"
DAY_BEFORE_BLACK_FRIDAY = datetime(2027, 11, 25, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
async def shop(database_url):
    await _reset(database_url)
    settings = make_settings(
        database_url,
        segments_dir=PROJECT_ROOT / "segments",
        broadcasts_dir=PROJECT_ROOT / "broadcasts",
        frequency_caps_file=PROJECT_ROOT / "policies" / "frequency.yaml",  # the shipped caps
    )
    runtime = await build_runtime(settings, clock=SimulatedClock(DAY_BEFORE_BLACK_FRIDAY))
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    app.state.runtime = runtime
    app.state.worker_loop = WorkerLoop(runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http
    await runtime.aclose()


async def advance(client, seconds: int) -> str:
    response = await client.post("/v1/admin/clock/advance", json={"seconds": seconds})
    assert response.status_code == 200, response.text
    return response.json()["now"]


async def test_the_black_friday_walkthrough(shop):
    client = shop
    imported = await client.post(
        "/v1/customers/import",
        params={"file_name": "fashion-customers.csv"},
        content=(EXAMPLES / "fashion-customers.csv").read_bytes(),
        headers={"content-type": "text/csv"},
    )
    assert imported.status_code == 200, imported.text
    summary = imported.json()
    assert (summary["created"], summary["rejected_lines"], summary["reject_count"]) == (6, 1, 3)
    orders = await client.post("/v1/batch", json=json.loads((EXAMPLES / "fashion-orders.json").read_text()))
    assert orders.status_code == 200, orders.text
    await advance(client, 60)

    preview = (await client.get("/v1/segments/french-opted-in-buyers-this-year/preview")).json()
    assert preview["count"] == 3
    assert sorted(c["user_id"] for c in preview["sample"]) == ["hugo", "lea", "marc"]

    scheduled = await client.post("/v1/broadcasts/black-friday-sms/schedule")
    assert scheduled.json()["state"] == "scheduled", scheduled.text
    assert await advance(client, 71940) == "2027-11-26T08:00:00Z"
    cart = {"userId": "lea", "event": "Cart Abandoned", "properties": {"cart_value": 80}}
    assert (await client.post("/v1/track", json=cart)).status_code == 200
    assert await advance(client, 25200) == "2027-11-26T15:00:00Z"

    broadcast = (await client.get("/v1/broadcasts/black-friday-sms")).json()
    assert (broadcast["state"], broadcast["recipients"], broadcast["kpis"]["sent"]) == ("done", 3, 3)

    listed = (await client.get("/v1/messages", params={"customer": "lea"})).json()
    sms = {m["journey_id"]: m for m in listed["items"] if m["channel"] == "sms"}
    assert sms["broadcast:black-friday-sms"]["created_at"] == "2027-11-26T09:00:00Z"  # 10:00 in Paris
    assert sms["broadcast:black-friday-sms"]["status"] in ("sent", "delivered")
    assert sms["abandoned-cart"]["status"] == "skipped"
    assert sms["abandoned-cart"]["status_reason"].startswith("frequency_cap: sms per_day 1")

    marc = (await client.get("/v1/messages", params={"customer": "marc"})).json()["items"]
    assert [m["created_at"] for m in marc if m["channel"] == "sms"] == ["2027-11-26T15:00:00Z"]  # 10:00 in Toronto

    [cart_kpis] = (await client.get("/v1/kpis", params={"journey": "abandoned-cart"})).json()["rows"]
    assert cart_kpis["capped"] == 1
