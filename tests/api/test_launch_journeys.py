"""The three launch journeys end to end through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

from orchestrator.channels.base import Channel
from orchestrator.clock import SimulatedClock
from orchestrator.engine.loop import WorkerLoop
from orchestrator.startup import build_runtime

HOUR = 3600
DAY = 24 * HOUR


async def identify(client, user_id: str, **traits) -> None:
    response = await client.post("/v1/identify", json={"userId": user_id, "traits": traits})
    assert response.status_code == 200, response.text


async def track(client, user_id: str, event: str, **properties) -> dict:
    response = await client.post("/v1/track", json={"userId": user_id, "event": event, "properties": properties})
    assert response.status_code == 200, response.text
    return response.json()


async def advance(client, seconds: float) -> None:
    response = await client.post("/v1/admin/clock/advance", json={"seconds": seconds})
    assert response.status_code == 200, response.text


async def messages_of(client, user_id: str) -> list[dict]:
    return (await client.get("/v1/customers/" + user_id)).json()["messages"]


def outbox(runtime, channel: Channel) -> list:
    return runtime.channels.for_channel(channel).outbox


# --- welcome -------------------------------------------------------------------------------


async def test_welcome_email_in_the_customers_locale(client, runtime, drain):
    await identify(client, "amelie", email="amelie@example.fr", locale="fr-FR", first_name="Amélie")
    await track(client, "amelie", "Signed Up")
    await drain()
    [message] = await messages_of(client, "amelie")
    assert message["status"] == "sent" and message["channel"] == "email" and message["locale"] == "fr"
    assert message["subject"] == "Bienvenue, Amélie !"
    [sent] = outbox(runtime, Channel.email)
    assert sent.to == "amelie@example.fr" and sent.subject == "Bienvenue, Amélie !"
    assert "Merci pour votre inscription" in sent.body


async def test_welcome_falls_back_to_the_default_locale(client, runtime, drain):
    await identify(client, "hans", email="hans@example.de", locale="de-DE")
    await track(client, "hans", "Signed Up")
    await drain()
    [message] = await messages_of(client, "hans")
    assert message["locale"] == "en" and message["subject"] == "Welcome aboard, friend!"
    assert outbox(runtime, Channel.email)[0].html.startswith("<p>Hi there,</p>")


async def test_welcome_picks_traditional_chinese_for_taiwan(client, drain):
    await identify(client, "mei", email="mei@example.tw", locale="zh-TW", first_name="美玲")
    await track(client, "mei", "Signed Up")
    await drain()
    [message] = await messages_of(client, "mei")
    assert message["locale"] == "zh-Hant" and message["subject"] == "歡迎加入，美玲！"


async def test_welcome_is_skipped_without_an_address(client, runtime, drain):
    await track(client, "ghost", "Signed Up")
    await drain()
    [message] = await messages_of(client, "ghost")
    assert (message["status"], message["status_reason"]) == ("skipped", "no email address")
    assert outbox(runtime, Channel.email) == []


# --- abandoned cart ------------------------------------------------------------------------


async def test_abandoned_cart_texts_a_discount_after_an_hour(client, runtime, drain):
    await identify(client, "sam", phone="+14155550100", sms_opt_in=True)
    await track(client, "sam", "Cart Abandoned", cart_value=80)
    await drain()
    await advance(client, HOUR - 60)
    assert await messages_of(client, "sam") == []
    await advance(client, 60)
    [message] = await messages_of(client, "sam")
    assert message["status"] == "sent" and message["channel"] == "sms"
    assert "CART15-SAM" in message["body"] and "15% off" in message["body"]
    assert (message["encoding"], message["segments"]) == ("GSM-7", 1)
    [sent] = outbox(runtime, Channel.sms)
    assert sent.to == "+14155550100" and sent.body == message["body"]
    enrollment = (await client.get("/v1/customers/sam")).json()["enrollments"][0]
    assert enrollment["status"] == "completed"


async def test_abandoned_cart_exits_when_the_customer_ordered(client, runtime, drain):
    await identify(client, "olga", phone="+14155550101", sms_opt_in=True)
    await track(client, "olga", "Cart Abandoned")
    await drain()
    await advance(client, 20 * 60)
    await track(client, "olga", "Order Completed", order_id="A-1", revenue=80)
    await advance(client, HOUR)
    assert await messages_of(client, "olga") == []
    assert outbox(runtime, Channel.sms) == []
    enrollments = {e["journey_id"]: e for e in (await client.get("/v1/customers/olga")).json()["enrollments"]}
    cart = enrollments["abandoned-cart"]
    assert (cart["status"], cart["exit_reason"]) == ("exited", "ordered before the reminder")
    assert cart["converted_at"] is not None  # the order is the journey's goal


async def test_abandoned_cart_in_traditional_chinese_is_ucs2(client, drain):
    await identify(client, "wen", phone="+886912345678", sms_opt_in=True, locale="zh-Hant")
    await track(client, "wen", "Cart Abandoned")
    await drain()
    await advance(client, 8 * HOUR)  # 01:00 in Taipei, wen's zone by her number: the SMS waits for 08:00
    [message] = await messages_of(client, "wen")
    assert message["locale"] == "zh-Hant" and message["encoding"] == "UCS-2"
    assert "CART15-WEN" in message["body"] and message["segments"] >= 1


async def test_abandoned_cart_skipped_without_sms_opt_in(client, runtime, drain):
    await identify(client, "nina", phone="+14155550102")
    await track(client, "nina", "Cart Abandoned")
    await drain()
    await advance(client, HOUR)
    [message] = await messages_of(client, "nina")
    assert (message["status"], message["status_reason"]) == ("skipped", "no sms opt-in")
    assert outbox(runtime, Channel.sms) == []


async def test_abandoned_cart_reentry_at_most_once_per_seven_days(client, drain):
    await identify(client, "rex", phone="+14155550103", sms_opt_in=True)
    await track(client, "rex", "Cart Abandoned")
    await drain()
    await advance(client, DAY)
    await track(client, "rex", "Cart Abandoned")  # one day later: ignored
    await advance(client, 6 * DAY)
    await track(client, "rex", "Cart Abandoned")  # seven days after the first entry: enters again
    await advance(client, HOUR)
    enrollments = [e for e in (await client.get("/v1/customers/rex")).json()["enrollments"]]
    assert [e["journey_id"] for e in enrollments] == ["abandoned-cart", "abandoned-cart"]
    assert len(await messages_of(client, "rex")) == 2


async def test_abandoned_cart_survives_a_restart_mid_wait(client, runtime, drain):
    await identify(client, "ivy", phone="+14155550104", sms_opt_in=True)
    await track(client, "ivy", "Cart Abandoned")
    await drain()
    await advance(client, 30 * 60)
    # A new process: fresh runtime on the same database, time moves on while it was down.
    clock = SimulatedClock(runtime.clock.now())
    restarted = await build_runtime(runtime.settings, clock=clock)
    try:
        clock.advance(__import__("datetime").timedelta(minutes=31))
        await WorkerLoop(restarted).drain()
        sent = outbox(restarted, Channel.sms)
        assert [m.to for m in sent] == ["+14155550104"]
    finally:
        await restarted.aclose()
    [message] = await messages_of(client, "ivy")
    assert message["status"] == "sent"


# --- post-purchase -------------------------------------------------------------------------


async def test_post_purchase_whatsapp_for_opted_in_customers(client, runtime, drain):
    await identify(client, "lola", phone="+34600000001", whatsapp_opt_in=True, locale="es", first_name="Lola")
    await track(client, "lola", "Order Completed", order_id="B-7", revenue=42)
    await drain()
    await advance(client, 3 * DAY - 60)
    assert await messages_of(client, "lola") == []
    await advance(client, 60)
    [message] = await messages_of(client, "lola")
    assert (message["channel"], message["locale"], message["status"]) == ("whatsapp", "es", "sent")
    assert "B-7" in message["body"] and message["body"].startswith("¡Hola Lola!")
    assert outbox(runtime, Channel.whatsapp)[0].to == "+34600000001"
    assert outbox(runtime, Channel.email) == []


async def test_post_purchase_email_for_everyone_else(client, runtime, drain):
    await identify(client, "max", email="max@example.com", phone="+14155550105")
    await track(client, "max", "Order Completed", order_id="C-9")
    await drain()
    await advance(client, 3 * DAY)
    [message] = await messages_of(client, "max")
    assert (message["channel"], message["subject"]) == ("email", "How was your order C-9?")
    assert outbox(runtime, Channel.whatsapp) == []


# --- quiet hours -----------------------------------------------------------------------------


async def test_sms_due_at_night_waits_for_the_recipients_morning(client, runtime, drain):
    # 09:00 UTC start; 12:30 UTC later is 20:30 in Taipei, and the reminder falls at 21:30.
    await identify(client, "lin", phone="+886912345679", sms_opt_in=True, timezone="Asia/Taipei")
    await advance(client, 3.5 * HOUR)
    await track(client, "lin", "Cart Abandoned")
    await drain()
    await advance(client, HOUR)
    assert await messages_of(client, "lin") == []
    enrollment = (await client.get("/v1/customers/lin")).json()["enrollments"][0]
    assert (enrollment["cursor"], enrollment["due_at"]) == ("discount-sms", "2026-03-03T00:00:00Z")
    await advance(client, 10.5 * HOUR)  # 08:00 in Taipei
    [message] = await messages_of(client, "lin")
    assert message["status"] == "sent" and message["created_at"] == "2026-03-03T00:00:00Z"


async def test_same_moment_is_daytime_elsewhere(client, drain):
    await identify(client, "joe", phone="+14155550177", sms_opt_in=True, timezone="America/Los_Angeles")
    await advance(client, 3.5 * HOUR + 4 * HOUR)  # 20:30 UTC = 12:30 in Los Angeles
    await track(client, "joe", "Cart Abandoned")
    await drain()
    await advance(client, HOUR)
    [message] = await messages_of(client, "joe")
    assert message["status"] == "sent"


async def test_a_broken_trigger_condition_does_not_reject_the_event(client, runtime, drain):
    from pathlib import Path

    from orchestrator.journeys.loader import parse_journey

    broken = parse_journey(
        "id: broken\ntrigger: {event: Signed Up, condition: \"event.total > 'x'\"}\nsteps:\n  - exit: never\n",
        Path("broken.yaml"),
    )
    runtime.catalog.add_current(broken)
    await identify(client, "bea", email="bea@example.com")
    response = await client.post("/v1/track", json={"userId": "bea", "event": "Signed Up", "properties": {"total": 3}})
    assert response.status_code == 200  # the welcome journey still enrolls her
    await drain()
    assert [m["journey_id"] for m in await messages_of(client, "bea")] == ["welcome"]
