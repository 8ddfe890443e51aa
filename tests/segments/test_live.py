"""Segment files reloaded while the service runs: through the API (the journeys' reload),
checked all or nothing, and picked up by a worker process that was never restarted."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from orchestrator.api.app import create_app
from orchestrator.clock import SimulatedClock
from orchestrator.segments.refresh import refresh_segments
from orchestrator.startup import build_runtime
from orchestrator.storage.models import Customer
from orchestrator.storage.segment_models import SegmentDefinition, SegmentMember
from tests.conftest import START, _reset, make_settings

VIP = "id: vip\nwhere:\n  trait: {name: plan, equals: vip}\n"
VIP_OR_GOLD = "id: vip\nwhere:\n  trait: {name: plan, in: [vip, gold]}\n"
FRENCH = "id: french\nwhere:\n  locale: {prefix: fr}\n"


@pytest.fixture
def segments_dir(tmp_path):
    folder = tmp_path / "segments"
    folder.mkdir()
    (folder / "vip.yaml").write_text(VIP)
    return folder


@pytest.fixture
async def api_and_worker(database_url, segments_dir):
    """Two runtimes on one database, as an API process and a worker process would be."""
    await _reset(database_url)
    settings = make_settings(database_url, segments_dir=segments_dir, catalog_refresh_seconds=0)
    api = await build_runtime(settings, clock=SimulatedClock(START))
    worker = await build_runtime(settings, clock=SimulatedClock(START))
    app = create_app(api.settings, run_worker=False, runtime=api)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        for user, traits in (("ann", {"plan": "vip"}), ("bob", {"plan": "gold", "locale": "fr-FR"}), ("cho", {})):
            assert (await client.post("/v1/identify", json={"userId": user, "traits": traits})).status_code == 200
        yield client, api, worker
    await worker.aclose()
    await api.aclose()


async def member_user_ids(runtime, segment_id: str) -> list[str]:
    async with runtime.sessions() as session:
        rows = await session.exec(
            sa.select(Customer.user_id)
            .join(SegmentMember, SegmentMember.customer_id == Customer.id)
            .where(SegmentMember.segment_id == segment_id)
            .order_by(Customer.user_id)
        )
        return list(rows.scalars())


async def published(runtime) -> dict[str, str]:
    async with runtime.sessions() as session:
        rows = await session.exec(sa.select(SegmentDefinition.segment_id, SegmentDefinition.version))
        return dict(rows.all())


async def test_a_reload_reaches_a_running_worker(api_and_worker, segments_dir):
    client, api, worker = api_and_worker
    await refresh_segments(worker)
    assert await member_user_ids(worker, "vip") == ["ann"]
    old_version = worker.segments.segments["vip"].version

    (segments_dir / "vip.yaml").write_text(VIP_OR_GOLD)
    (segments_dir / "french.yaml").write_text(FRENCH)
    reloaded = await client.post("/v1/segments/reload")
    assert reloaded.status_code == 200, reloaded.text
    versions = reloaded.json()["segments"]
    assert set(versions) == {"vip", "french"} and versions["vip"] != old_version
    assert await published(api) == versions

    rounds = {r.segment_id: r for r in await refresh_segments(worker)}  # the worker was not restarted
    assert worker.segments.segments["vip"].version == versions["vip"]
    assert rounds["vip"].swept and (rounds["vip"].entered, rounds["vip"].left) == (1, 0)  # re-evaluated whole
    assert await member_user_ids(worker, "vip") == ["ann", "bob"]
    assert await member_user_ids(worker, "french") == ["bob"]
    listed = (await client.get("/v1/segments")).json()["segments"]
    assert {s["id"]: s["members"] for s in listed} == {"vip": 2, "french": 1}


async def test_the_journeys_reload_reloads_segments_too(api_and_worker, segments_dir):
    client, api, worker = api_and_worker
    (segments_dir / "vip.yaml").unlink()
    (segments_dir / "french.yaml").write_text(FRENCH)
    reloaded = await client.post("/v1/journeys/reload")
    assert reloaded.status_code == 200, reloaded.text
    assert set(reloaded.json()["segments"]) == {"french"} and "welcome" in reloaded.json()["versions"]
    rounds = await refresh_segments(worker)
    assert [r.segment_id for r in rounds] == ["french"]  # the removed segment is no longer evaluated
    assert await member_user_ids(worker, "french") == ["bob"]
    assert await member_user_ids(worker, "vip") == []


async def test_an_invalid_segment_file_refuses_the_whole_reload(api_and_worker, segments_dir):
    client, api, worker = api_and_worker
    before = await published(api)
    (segments_dir / "french.yaml").write_text(FRENCH)  # valid, but in a refused reload
    (segments_dir / "vip.yaml").write_text("id: vip\nwhere:\n  trait: {name: plan, equals: vip}\n  bogus: 1\n")
    refused = await client.post("/v1/segments/reload")
    assert refused.status_code == 422
    [error] = refused.json()["detail"]["errors"]
    assert error["file"].endswith("vip.yaml") and error["line"] == 4 and error["key"] == "where.bogus"
    assert error["text"].startswith(f"{segments_dir / 'vip.yaml'}:4: where.bogus")
    assert (await client.post("/v1/journeys/reload")).status_code == 422  # the same check on either route

    assert await published(api) == before
    assert set(api.segments.segments) == {"vip"} and api.segments.segments["vip"].version == before["vip"]
    await refresh_segments(worker)
    assert set(worker.segments.segments) == {"vip"}
    assert await member_user_ids(worker, "vip") == ["ann"]
    assert await member_user_ids(worker, "french") == []
