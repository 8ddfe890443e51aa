"""A customer's timeline: a journey, an SMS and its delivery, a STOP reply, a conversion."""

from __future__ import annotations

from datetime import timedelta

from tests.api.test_launch_journeys import HOUR, advance, identify, messages_of, track
from tests.webhooks.test_twilio import INBOUND_PATH, STATUS_PATH, as_if_sent_by_twilio, status_form
from tests.webhooks.twilio_signing import inbound_form, post_signed


async def a_minute_later(runtime) -> None:
    runtime.clock.advance(timedelta(minutes=1))


async def sams_story(client, runtime, drain) -> None:
    await identify(client, "sam", phone="+14155550100", sms_opt_in=True)
    await identify(client, "ann", email="ann@example.com")  # someone else: never in sam's timeline
    await a_minute_later(runtime)
    await track(client, "sam", "Cart Abandoned", cart_value=80)
    await drain()
    await advance(client, HOUR)  # the reminder goes out
    [message] = await messages_of(client, "sam")
    message = await as_if_sent_by_twilio(runtime, message)
    await a_minute_later(runtime)
    assert (await post_signed(client, runtime, STATUS_PATH, status_form(message, "delivered"))).status_code == 204
    await a_minute_later(runtime)
    stop = await post_signed(client, runtime, INBOUND_PATH, inbound_form("SM-stop", "+14155550100", "STOP"))
    assert stop.status_code == 200
    await a_minute_later(runtime)
    await track(client, "sam", "Order Completed", revenue=80, currency="USD", order_id="A-1")


async def test_timeline_tells_the_story_in_time_order(client, runtime, drain):
    await sams_story(client, runtime, drain)
    response = await client.get("/v1/customers/sam/timeline")
    assert response.status_code == 200, response.text
    timeline = response.json()
    items = timeline["items"]
    assert [item["kind"] for item in items] == [
        "identify",
        "consent",  # 17:00 traits, and the opt-in they carry
        "track",
        "enrollment_entered",  # 17:01 the cart, and the journey it starts
        "message_created",
        "message_sent",
        "enrollment_ended",  # 18:01 the reminder
        "message_status",  # 18:02 Twilio: delivered
        "inbound",
        "consent",  # 18:03 STOP, and the opt-out it records
        "track",
        "enrollment_entered",  # 18:04 the order starts post-purchase,
        "enrollment_converted",
        "conversion",  #       and converts the cart journey
    ]
    assert timeline["has_more"] is False and timeline["user_id"] == "sam"
    times = [item["at"] for item in items]
    assert times == sorted(times) and times[0] == "2026-03-02T17:00:00Z" and times[-1] == "2026-03-02T18:04:00Z"

    summary = {(item["kind"], index): item["summary"] for index, item in enumerate(items)}
    assert summary["consent", 1] == "sms opted in (source: identify)"
    assert summary["track", 2] == "tracked 'Cart Abandoned' {cart_value: 80}"
    assert summary["enrollment_entered", 3].startswith("entered journey abandoned-cart (version ")
    assert summary["message_created", 4] == "queued sms for abandoned-cart/discount-sms to +14155550100 (now delivered)"
    assert summary["message_sent", 5] == "sent sms for abandoned-cart/discount-sms via local"
    assert summary["enrollment_ended", 6].startswith("completed journey abandoned-cart")
    assert summary["message_status", 7] == "sms for abandoned-cart/discount-sms: delivered (reported by twilio)"
    assert summary["inbound", 8] == "replied by sms: 'STOP' (opt-out keyword)"
    assert summary["consent", 9] == "sms opted out (source: sms_keyword)"
    assert summary["enrollment_entered", 11].startswith("entered journey post-purchase")
    assert summary["enrollment_converted", 12] == "reached the goal of journey abandoned-cart"
    assert summary["conversion", 13].startswith("converted worth 80")
    assert summary["conversion", 13].endswith("credited to abandoned-cart/discount-sms by sms")

    message_entries = [item for item in items if item["kind"].startswith("message_")]
    assert {(item["channel"], item["journey_id"], item["step_id"]) for item in message_entries} == {
        ("sms", "abandoned-cart", "discount-sms")
    }
    assert len({item["message_id"] for item in message_entries}) == 1
    assert (
        items[3]["enrollment_id"]
        == items[6]["enrollment_id"]
        == items[12]["enrollment_id"]
        == items[13]["enrollment_id"]
    )
    assert items[11]["enrollment_id"] != items[3]["enrollment_id"]


async def test_timeline_pages_and_newest_first(client, runtime, drain):
    await sams_story(client, runtime, drain)
    everything = (await client.get("/v1/customers/sam/timeline")).json()["items"]
    first = (await client.get("/v1/customers/sam/timeline", params={"limit": 5})).json()
    second = (await client.get("/v1/customers/sam/timeline", params={"limit": 5, "offset": 5})).json()
    last = (await client.get("/v1/customers/sam/timeline", params={"limit": 5, "offset": 10})).json()
    assert (first["has_more"], second["has_more"], last["has_more"]) == (True, True, False)
    assert first["items"] + second["items"] + last["items"] == everything
    newest = (await client.get("/v1/customers/sam/timeline", params={"order": "desc", "limit": 4})).json()
    assert newest["items"] == everything[::-1][:4] and newest["has_more"] is True


async def test_timeline_of_an_unknown_customer_is_404(client):
    assert (await client.get("/v1/customers/nobody/timeline")).status_code == 404
    assert (await client.get("/v1/customers/nobody/timeline", params={"limit": 0})).status_code == 422
