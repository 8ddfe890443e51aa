"""Journeys while running: versions by content, reload (validated), pause and resume."""

from __future__ import annotations

import shutil

import pytest

from orchestrator.clock import SimulatedClock
from orchestrator.config import PROJECT_ROOT
from orchestrator.startup import build_runtime
from tests.api.test_launch_journeys import HOUR, advance, identify, messages_of, track
from tests.conftest import START, _reset, make_settings

DRIP_V1 = """\
id: drip
trigger: {event: Started}
steps:
  - id: first
    wait: 1h
  - id: hello
    send: {channel: sms, template: nps-question}
  - id: second
    wait: 1h
  - id: again
    send: {channel: sms, template: nps-question}
"""
DRIP_V2 = """\
id: drip
trigger: {event: Started}
steps:
  - id: first
    wait: 2h
  - id: hello
    send: {channel: sms, template: nps-question}
"""


@pytest.fixture
async def journeys_dir(tmp_path):
    folder = tmp_path / "journeys"
    folder.mkdir()
    shutil.copy(PROJECT_ROOT / "journeys" / "welcome.yaml", folder)
    (folder / "drip.yaml").write_text(DRIP_V1)
    return folder


@pytest.fixture
async def runtime(database_url, journeys_dir):
    await _reset(database_url)
    runtime = await build_runtime(make_settings(database_url, journeys_dir=journeys_dir), clock=SimulatedClock(START))
    yield runtime
    await runtime.aclose()


async def journeys(client) -> dict:
    return {j["id"]: j for j in (await client.get("/v1/journeys")).json()}


async def test_a_new_version_leaves_running_enrollments_on_theirs(client, journeys_dir, drain):
    for user in ("old", "new"):
        await identify(
            client, user, phone=f"+1415555030{len(user)}" if user == "old" else "+14155550399", sms_opt_in=True
        )
    await track(client, "old", "Started")
    await drain()
    v1 = (await journeys(client))["drip"]["current_version"]

    (journeys_dir / "drip.yaml").write_text(DRIP_V2)
    reloaded = await client.post("/v1/journeys/reload")
    assert reloaded.status_code == 200, reloaded.text
    v2 = reloaded.json()["versions"]["drip"]
    assert v2 != v1
    await track(client, "new", "Started")
    await drain()
    assert (await journeys(client))["drip"]["enrollments_by_version"] == {v1: 1, v2: 1}

    await advance(client, 2 * HOUR)
    await advance(client, HOUR)
    assert [m["step_id"] for m in await messages_of(client, "old")] == ["hello", "again"]  # v1 keeps its step
    assert [m["step_id"] for m in await messages_of(client, "new")] == ["hello"]
    listing = await journeys(client)
    assert listing["drip"]["versions"] == [v1, v2] and listing["drip"]["enrollments"] == {"completed": 2}


async def test_an_invalid_change_is_refused_and_the_old_version_keeps_running(client, journeys_dir, drain):
    before = (await journeys(client))["drip"]["current_version"]
    (journeys_dir / "drip.yaml").write_text(DRIP_V1.replace("wait: 1h", "wait: soon", 1))
    refused = await client.post("/v1/journeys/reload")
    assert refused.status_code == 422
    [error] = refused.json()["detail"]["errors"]
    assert error["line"] == 5 and error["key"] == "steps[0].wait" and error["file"].endswith("drip.yaml")
    assert (await journeys(client))["drip"]["current_version"] == before
    await identify(client, "late", phone="+14155550311", sms_opt_in=True)
    await track(client, "late", "Started")
    await drain()
    await advance(client, HOUR)
    assert len(await messages_of(client, "late")) == 1


async def test_a_reload_runs_the_checks_of_validate(client, journeys_dir):
    before = (await journeys(client))["drip"]["current_version"]
    (journeys_dir / "drip.yaml").write_text(DRIP_V1.replace("template: nps-question", "template: no-such-template", 1))
    refused = await client.post("/v1/journeys/reload")
    assert refused.status_code == 422
    [error] = refused.json()["detail"]["errors"]
    assert error["file"].endswith("drip.yaml") and "no-such-template" in error["message"]
    assert (await journeys(client))["drip"]["current_version"] == before


async def test_start_up_refuses_a_journey_validate_rejects_and_logs_warnings(database_url, journeys_dir, caplog):
    (journeys_dir / "drip.yaml").write_text(DRIP_V1.replace("template: nps-question", "template: no-such-template", 1))
    (journeys_dir / "trailing.yaml").write_text(
        "id: trailing\ntrigger: {event: Started}\nsteps:\n  - id: hello\n    send: {channel: sms, template: nps-question}\n"
        "  - id: linger\n    wait: 1h\n"
    )
    await _reset(database_url)
    runtime = await build_runtime(make_settings(database_url, journeys_dir=journeys_dir), clock=SimulatedClock(START))
    try:
        assert set(runtime.catalog.current) == {"welcome", "trailing"}  # a warning loads; an error refuses the file
        assert any("drip.yaml" in str(e) and "no-such-template" in str(e) for e in runtime.catalog.errors)
        assert any("trailing" in r.message and "warning" in r.message for r in caplog.records)
    finally:
        await runtime.aclose()


async def test_pause_holds_at_the_next_send_and_resume_releases(client, drain):
    await identify(client, "ida", phone="+14155550312", sms_opt_in=True)
    await identify(client, "ben", phone="+14155550313", sms_opt_in=True)
    await track(client, "ida", "Started")
    await drain()
    assert (await client.post("/v1/journeys/drip/pause")).json() == {"id": "drip", "state": "paused"}
    await track(client, "ben", "Started")  # paused: no new entrants
    await advance(client, 3 * HOUR)
    assert await messages_of(client, "ida") == []
    [held] = (await client.get("/v1/customers/ida")).json()["enrollments"]
    assert (held["status"], held["cursor"], held["due_at"]) == ("active", "hello", None)
    assert (await client.get("/v1/customers/ben")).json()["enrollments"] == []
    assert (await journeys(client))["drip"]["state"] == "paused"

    await client.post("/v1/journeys/drip/resume")
    await drain()
    assert [m["step_id"] for m in await messages_of(client, "ida")] == ["hello"]
    assert (await client.post("/v1/journeys/nope/pause")).status_code == 404


async def test_a_removed_file_retires_the_journey(client, journeys_dir):
    (journeys_dir / "drip.yaml").unlink()
    await client.post("/v1/journeys/reload")
    assert (await journeys(client))["drip"]["state"] == "retired"
    await identify(client, "zed", phone="+14155550314", sms_opt_in=True)
    await track(client, "zed", "Started")
    assert (await client.get("/v1/customers/zed")).json()["enrollments"] == []
