"""A new user's first hour: time zones from phone numbers, quiet-hours holds that say so,
and simulated time that behaves like real time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from orchestrator.clock import SimulatedClock
from orchestrator.customers.timezones import zone_from_phone
from orchestrator.startup import build_runtime
from tests.api.test_launch_journeys import HOUR, advance, identify, messages_of, track
from tests.conftest import START


@pytest.mark.parametrize(
    ("number", "zone", "source"),
    [
        ("+14155550100", "America/Los_Angeles", "phone"),  # one zone for the 415 area code
        ("+886912345678", "Asia/Taipei", "phone"),  # one zone for the country
        ("whatsapp:+33612345678", "Europe/Paris", "phone"),
        ("+34600000001", "Europe/Madrid", "phone_country"),  # Spanish mobiles: Madrid or the Canaries
        ("+18005550100", "America/New_York", "phone_country"),  # toll-free: anywhere in the US
    ],
)
def test_a_zone_from_the_phone_number(number, zone, source):
    assert zone_from_phone(number) == (zone, source)


@pytest.mark.parametrize("number", [None, "", "not a number", "+999"])
def test_no_zone_when_the_number_tells_nothing(number):
    assert zone_from_phone(number) is None


async def test_the_quick_start_sms_goes_out_in_the_evening_utc(client, drain):
    # The README's example run at 22:00 UTC: 14:00 in California, sam's zone by his number.
    await advance(client, 5 * HOUR)
    await identify(client, "sam", phone="+14155550100", sms_opt_in=True)
    customer = (await client.get("/v1/customers/sam")).json()
    assert (customer["timezone"], customer["timezone_source"]) == ("America/Los_Angeles", "phone")
    await track(client, "sam", "Cart Abandoned", cart_value=80)
    await drain()
    await advance(client, HOUR)
    [message] = await messages_of(client, "sam")
    assert message["status"] == "sent" and "CART15-SAM" in message["body"]


async def test_a_timezone_trait_wins_over_the_number_and_survives_a_new_number(client):
    await identify(client, "ann", phone="+14155550101", timezone="Europe/Paris")
    await identify(client, "ann", phone="+886912000002")
    customer = (await client.get("/v1/customers/ann")).json()
    assert (customer["timezone"], customer["timezone_source"]) == ("Europe/Paris", "trait")
    await identify(client, "bob", email="bob@example.com")
    customer = (await client.get("/v1/customers/bob")).json()
    assert (customer["timezone"], customer["timezone_source"]) == (None, None)  # nothing known: UTC


async def mei_abandons_a_cart_at_night_in_taipei(client, drain) -> None:
    # 17:00 UTC is 01:00 in Taipei, the zone of mei's number: the reminder an hour later is held.
    await identify(client, "mei", phone="+886912000010", sms_opt_in=True)
    await track(client, "mei", "Cart Abandoned", cart_value=80)
    await drain()
    await advance(client, HOUR)


async def test_a_quiet_hours_hold_shows_on_the_customer_and_in_the_timeline(client, drain):
    await mei_abandons_a_cart_at_night_in_taipei(client, drain)
    customer = (await client.get("/v1/customers/mei")).json()
    assert customer["messages"] == []
    [enrollment] = customer["enrollments"]
    assert enrollment["hold"] == "held by quiet hours until 08:00 Asia/Taipei"
    assert (enrollment["held_by"], enrollment["held_until"]) == ("quiet_hours", "2026-03-03T00:00:00Z")
    timeline = (await client.get("/v1/customers/mei/timeline")).json()["items"]
    [held] = [item for item in timeline if item["kind"] == "enrollment_held"]
    assert held["at"] == "2026-03-02T18:00:00Z"
    assert held["summary"] == "journey abandoned-cart held by quiet hours until 08:00 Asia/Taipei"

    await advance(client, 7 * HOUR)  # past 08:00 in Taipei: the SMS goes out, the hold is over
    customer = (await client.get("/v1/customers/mei")).json()
    assert [m["status"] for m in customer["messages"]] == ["sent"]
    assert customer["enrollments"][0]["hold"] is None
    timeline = (await client.get("/v1/customers/mei/timeline")).json()["items"]
    assert [item["kind"] for item in timeline].count("enrollment_held") == 1  # the hold stays in the history


async def test_one_long_jump_stamps_each_message_with_the_time_it_was_due(client, drain):
    await mei_abandons_a_cart_at_night_in_taipei(client, drain)
    await advance(client, 3 * 24 * HOUR)  # one jump far past 00:00 UTC, when the hold ended
    [message] = await messages_of(client, "mei")
    assert message["status"] == "sent"
    assert message["created_at"] == message["sent_at"] == "2026-03-03T00:00:00Z"


async def test_the_answer_of_an_advance_is_the_end_of_the_jump(client, drain):
    await mei_abandons_a_cart_at_night_in_taipei(client, drain)
    response = await client.post("/v1/admin/clock/advance", json={"seconds": 24 * HOUR})
    assert response.json()["now"] == "2026-03-03T18:00:00Z" and response.json()["work_done"] >= 1


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
