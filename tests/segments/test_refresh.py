"""Membership kept current: entering on an event, leaving when a window passes, the log,
size over time, idempotent rounds, and journeys started and ended by segment changes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import select

from orchestrator.api.app import create_app
from orchestrator.clock import SimulatedClock
from orchestrator.engine.loop import WorkerLoop
from orchestrator.segments.refresh import refresh_segments
from orchestrator.startup import build_runtime
from orchestrator.storage.models import Enrollment
from orchestrator.storage.segment_models import SegmentMember, SegmentMembershipChange, SegmentSizeSample
from tests.conftest import PROJECT_ROOT, START, _reset, make_settings

REPEAT = "repeat-buyers-90d"  # segments/repeat-buyers-90d.yaml: two orders within 90 days


async def order(client, user_id: str, days_ago: float, order_id: str) -> None:
    response = await client.post(
        "/v1/track",
        json={
            "userId": user_id,
            "event": "Order Completed",
            "properties": {"order_id": order_id, "revenue": 40},
            "timestamp": (START - timedelta(days=days_ago)).isoformat(),
        },
    )
    assert response.status_code == 200, response.text


async def rows(runtime, statement) -> list:
    async with runtime.sessions() as session:
        return list((await session.exec(statement)).all())


def round_of(rounds, segment_id):
    return next((r for r in rounds if r.segment_id == segment_id), None)


async def members(runtime, segment_id: str = REPEAT) -> list[int]:
    return [
        r[0]
        for r in await rows(runtime, sa.select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment_id))
    ]


async def test_a_customer_enters_on_an_event_and_leaves_when_the_window_passes(client, runtime):
    await order(client, "ann", days_ago=10, order_id="A-1")
    first = round_of(await refresh_segments(runtime), REPEAT)
    assert first.swept and (first.entered, first.left) == (0, 0)  # one order is not a repeat

    await order(client, "ann", days_ago=0, order_id="A-2")
    second = round_of(await refresh_segments(runtime), REPEAT)
    assert not second.swept and (second.entered, second.left) == (1, 0)  # only ann was looked at
    assert len(await members(runtime)) == 1
    assert round_of(await refresh_segments(runtime), REPEAT) is None  # nothing new: nothing done
    await refresh_segments(runtime, sweep=True)

    runtime.clock.advance(timedelta(days=80))  # the first order is 90 days old: still in
    assert round_of(await refresh_segments(runtime), REPEAT).left == 0
    runtime.clock.advance(timedelta(days=1))
    last = round_of(await refresh_segments(runtime), REPEAT)
    assert last.swept and last.left == 1
    assert await members(runtime) == []

    log = await rows(
        runtime,
        sa.select(SegmentMembershipChange.change)
        .where(SegmentMembershipChange.segment_id == REPEAT)
        .order_by(SegmentMembershipChange.id),
    )
    assert [r[0] for r in log] == ["entered", "left"]
    sizes = await rows(
        runtime,
        sa.select(SegmentSizeSample.members)
        .where(SegmentSizeSample.segment_id == REPEAT)
        .order_by(SegmentSizeSample.id),
    )
    assert [r[0] for r in sizes] == [0, 1, 1, 0]


async def test_a_consent_change_alone_moves_a_customer(client, runtime):
    """French SMS buyers this year: ann orders first, opts in to SMS later, with no new event."""
    await client.post("/v1/identify", json={"userId": "ann", "traits": {"locale": "fr-FR"}})
    await order(client, "ann", days_ago=1, order_id="A-1")
    await refresh_segments(runtime)
    assert await members(runtime, "french-opted-in-buyers-this-year") == []
    response = await client.post(
        "/v1/customers/ann/consents", json={"channel": "sms", "status": "opted_in", "source": "web_form"}
    )
    assert response.status_code < 300, response.text
    await refresh_segments(runtime)
    assert len(await members(runtime, "french-opted-in-buyers-this-year")) == 1


async def test_rounds_are_idempotent_across_workers(client, runtime):
    for user in ("ann", "bob", "cho"):
        await order(client, user, days_ago=5, order_id=f"{user}-1")
        await order(client, user, days_ago=2, order_id=f"{user}-2")
    if runtime.settings.database_url.startswith("sqlite"):  # one process: rounds run one after another
        await refresh_segments(runtime)
        await refresh_segments(runtime, sweep=True)
    else:  # two workers at once: each segment is evaluated by one of them
        await asyncio.gather(
            refresh_segments(runtime), refresh_segments(runtime), refresh_segments(runtime, sweep=True)
        )
    assert len(await members(runtime)) == 3
    entries = await rows(runtime, sa.select(sa.func.count()).where(SegmentMembershipChange.segment_id == REPEAT))
    assert entries[0][0] == 3


JOURNEY = """\
id: repeat-buyer-thanks
trigger:
  segment_entered: repeat-buyers-90d
exit_on:
  - segment_left: repeat-buyers-90d
steps:
  - wait: 120d
  - send: {channel: email, template: welcome-email}
"""


@pytest.fixture
async def journey_client(database_url, tmp_path):
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    (journeys / "repeat-buyer-thanks.yaml").write_text(JOURNEY)
    await _reset(database_url)
    settings = make_settings(database_url, journeys_dir=journeys, segments_dir=PROJECT_ROOT / "segments")
    runtime = await build_runtime(settings, clock=SimulatedClock(START))
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    app.state.runtime = runtime
    app.state.worker_loop = WorkerLoop(runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http, runtime
    await runtime.aclose()


async def test_entering_a_segment_starts_a_journey_and_leaving_ends_it(journey_client):
    client, runtime = journey_client
    await order(client, "bob", days_ago=3, order_id="B-1")
    await order(client, "bob", days_ago=2, order_id="B-2")
    await refresh_segments(runtime)  # the first fill: bob was already a repeat buyer, he did not just enter
    await order(client, "ann", days_ago=10, order_id="A-1")
    await order(client, "ann", days_ago=0, order_id="A-2")
    await refresh_segments(runtime)

    enrollments = await rows(runtime, select(Enrollment))
    assert [(e.journey_id, e.status) for e in enrollments] == [("repeat-buyer-thanks", "active")]
    ann = enrollments[0].customer_id
    assert ann in await members(runtime)

    response = await client.post("/v1/admin/clock/advance", json={"seconds": 81 * 86400})
    assert response.status_code == 200, response.text
    enrollment = (await rows(runtime, select(Enrollment).where(Enrollment.customer_id == ann)))[0]
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "exit_on: Segment Left: repeat-buyers-90d")
