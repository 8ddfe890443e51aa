"""A new user's first hour: quiet-hours holds that say so, and simulated time that behaves."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from orchestrator.clock import SimulatedClock
from orchestrator.startup import build_runtime
from tests.api.test_launch_journeys import HOUR, advance, identify, messages_of, track
from tests.conftest import START


async def sam_abandons_a_cart_at_night_in_california(client, drain) -> None:
    # 09:00 UTC is 01:00 in San Francisco: the reminder an hour later falls in quiet hours.
    await identify(client, "sam", phone="+14155550100", sms_opt_in=True, timezone="America/Los_Angeles")
    await track(client, "sam", "Cart Abandoned", cart_value=80)
    await drain()
    await advance(client, HOUR)


async def test_a_quiet_hours_hold_shows_on_the_customer_and_in_the_timeline(client, drain):
    await sam_abandons_a_cart_at_night_in_california(client, drain)
    customer = (await client.get("/v1/customers/sam")).json()
    assert customer["messages"] == []
    [enrollment] = customer["enrollments"]
    assert enrollment["hold"] == "held by quiet hours until 08:00 America/Los_Angeles"
    assert (enrollment["held_by"], enrollment["held_until"]) == ("quiet_hours", "2026-03-02T16:00:00Z")
    timeline = (await client.get("/v1/customers/sam/timeline")).json()["items"]
    [held] = [item for item in timeline if item["kind"] == "enrollment_held"]
    assert held["at"] == "2026-03-02T10:00:00Z"
    assert held["summary"] == "journey abandoned-cart held by quiet hours until 08:00 America/Los_Angeles"

    await advance(client, 7 * HOUR)  # past 08:00 in California: the SMS goes out, the hold is over
    customer = (await client.get("/v1/customers/sam")).json()
    assert [m["status"] for m in customer["messages"]] == ["sent"]
    assert customer["enrollments"][0]["hold"] is None
    timeline = (await client.get("/v1/customers/sam/timeline")).json()["items"]
    assert [item["kind"] for item in timeline].count("enrollment_held") == 1  # the hold stays in the history


async def test_one_long_jump_stamps_each_message_with_the_time_it_was_due(client, drain):
    await sam_abandons_a_cart_at_night_in_california(client, drain)
    await advance(client, 3 * 24 * HOUR)  # one jump far past 16:00 UTC, when the hold ended
    [message] = await messages_of(client, "sam")
    assert message["status"] == "sent"
    assert message["created_at"] == message["sent_at"] == "2026-03-02T16:00:00Z"


async def test_the_answer_of_an_advance_is_the_end_of_the_jump(client, drain):
    await sam_abandons_a_cart_at_night_in_california(client, drain)
    response = await client.post("/v1/admin/clock/advance", json={"seconds": 24 * HOUR})
    assert response.json()["now"] == "2026-03-03T10:00:00Z" and response.json()["work_done"] >= 1


async def test_simulated_time_survives_a_restart(client, runtime):
    await advance(client, 5 * 24 * HOUR)
    # A new process, configured to start simulated time where the first one started.
    restarted = await build_runtime(runtime.settings, clock=SimulatedClock(START))
    try:
        assert restarted.clock.now() == START + timedelta(days=5)
    finally:
        await restarted.aclose()


async def test_a_start_later_than_the_stored_time_wins(client, runtime):
    await advance(client, HOUR)
    later = datetime(2027, 1, 1, tzinfo=timezone.utc)
    restarted = await build_runtime(runtime.settings, clock=SimulatedClock(later))
    try:
        assert restarted.clock.now() == later
    finally:
        await restarted.aclose()
