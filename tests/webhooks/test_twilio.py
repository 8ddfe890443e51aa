"""Twilio webhooks: signatures, out-of-order status callbacks, inbound keywords and consent."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlmodel import select

from orchestrator.channels.configure import twilio_auth_token
from orchestrator.storage.database import create_engine
from orchestrator.storage.feedback_models import MessageStatusEvent
from orchestrator.storage.models import Message
from tests.api.test_launch_journeys import HOUR, advance, identify, messages_of, track
from tests.webhooks.twilio_signing import inbound_form, post_signed, twilio_sid

STATUS_PATH = "/webhooks/twilio/status"
INBOUND_PATH = "/webhooks/twilio/inbound"


async def sent_sms(client, drain, user="sam", phone="+14155550100") -> dict:
    await identify(client, user, phone=phone, sms_opt_in=True)
    await track(client, user, "Cart Abandoned")
    await drain()
    await advance(client, HOUR)
    [message] = await messages_of(client, user)
    return await as_if_sent_by_twilio(runtime_of(client), message)


def runtime_of(client):
    return client._transport.app.state.runtime


async def as_if_sent_by_twilio(runtime, message: dict) -> dict:
    """The local SMS adapter names its messages `local-…`; Twilio's callbacks carry SM + 32 hex."""
    from orchestrator.storage.models import Message

    async with runtime.sessions() as session, session.begin():
        row = await session.get(Message, message["id"])
        row.provider_message_id = twilio_sid(message["provider_message_id"])
    return {**message, "provider_message_id": twilio_sid(message["provider_message_id"])}


def status_form(message: dict, status: str, **extra) -> dict:
    return {
        "MessageSid": message["provider_message_id"],
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": "AC" + "0" * 32,
        "To": message["to_address"],
        "From": "+15005550006",
        **extra,
    }


async def test_unsigned_and_forged_requests_are_refused(client, runtime, drain):
    message = await sent_sms(client, drain)
    form = status_form(message, "delivered")
    assert (await client.post(STATUS_PATH, data=form)).status_code == 403
    assert (await post_signed(client, runtime, STATUS_PATH, form, token="not-the-token")).status_code == 403
    tampered = await post_signed(client, runtime, STATUS_PATH, form, signature="bm9wZQ==")
    assert tampered.status_code == 403
    assert (
        await post_signed(client, runtime, INBOUND_PATH, inbound_form("SMx", "+14155550100", "STOP"), token="forged")
    ).status_code == 403
    [message] = await messages_of(client, "sam")
    assert message["status"] == "sent"  # nothing changed


async def test_a_callback_before_the_provider_id_is_stored_is_refused_for_a_retry(client, runtime, drain):
    message = await sent_sms(client, drain)
    early = status_form(message, "delivered", MessageSid="SM" + "e" * 32)  # an id we have not stored yet
    assert (await post_signed(client, runtime, STATUS_PATH, early)).status_code == 503
    async with runtime.sessions() as session, session.begin():
        from orchestrator.storage.models import Message

        stored = await session.get(Message, message["id"])
        stored.provider_message_id = "SM" + "e" * 32  # the worker's commit lands
    assert (await post_signed(client, runtime, STATUS_PATH, early)).status_code == 204  # the retry counts
    [message] = await messages_of(client, "sam")
    assert message["status"] == "delivered"


async def test_duplicated_and_shuffled_callbacks_end_delivered_without_double_counting(client, runtime, drain):
    message = await sent_sms(client, drain)
    callbacks = ["queued", "sent", "delivered"] * 2
    random.Random(7).shuffle(callbacks)
    for status in ["delivered"] + callbacks:  # delivered first: the worst order
        response = await post_signed(client, runtime, STATUS_PATH, status_form(message, status))
        assert response.status_code == 204
    [message] = await messages_of(client, "sam")
    assert message["status"] == "delivered"
    async with runtime.sessions() as session:
        history = (
            await session.exec(select(MessageStatusEvent.status).where(MessageStatusEvent.message_id == message["id"]))
        ).all()
    assert sorted(history) == ["delivered", "queued", "sent"]  # each status once, replays ignored


async def test_failed_callback_records_the_error_code(client, runtime, drain):
    message = await sent_sms(client, drain)
    await post_signed(client, runtime, STATUS_PATH, status_form(message, "undelivered", ErrorCode="30003"))
    [message] = await messages_of(client, "sam")
    assert (message["status"], message["error_code"]) == ("undelivered", "30003")


async def test_a_callback_names_its_message_by_send_key_when_the_sid_was_never_stored(client, runtime, drain):
    from urllib.parse import quote

    from orchestrator.storage.models import Message

    message = await sent_sms(client, drain)
    async with runtime.sessions() as session, session.begin():  # as a lost answer left it
        row = await session.get(Message, message["id"])
        row.status, row.provider_message_id = "unknown", None
    form = status_form(message, "delivered", MessageSid="SM" + "7" * 32)

    response = await post_signed(client, runtime, f"{STATUS_PATH}?sk={quote(message['send_key'])}", form)

    [message] = await messages_of(client, "sam")
    assert response.status_code == 204
    assert (message["status"], message["provider_message_id"]) == ("delivered", "SM" + "7" * 32)


class BlockingPriceLookup:
    """A provider whose price lookup hangs until the test lets it answer."""

    def __init__(self) -> None:
        self.asked, self.answer = asyncio.Event(), asyncio.Event()
        self.calls = 0

    async def fetch_price(self, sid: str) -> tuple[Decimal, str]:
        self.calls += 1
        self.asked.set()
        await self.answer.wait()
        return Decimal("0.0158"), "USD"


async def write_without_waiting(runtime, message_id: int) -> None:
    """Change the message row in a transaction of its own that refuses to wait for a lock:
    it fails at once if anyone holds the row (PostgreSQL) or the write lock (SQLite)."""
    engine = create_engine(runtime.settings.database_url)
    try:
        async with engine.begin() as connection:
            if engine.dialect.name == "sqlite":
                await connection.exec_driver_sql("PRAGMA busy_timeout=0")
            else:
                await connection.execute(
                    sa.text("SELECT id FROM messages WHERE id = :id FOR UPDATE NOWAIT"), {"id": message_id}
                )
            await connection.execute(
                sa.text("UPDATE messages SET status_reason = 'touched' WHERE id = :id"), {"id": message_id}
            )
    finally:
        await engine.dispose()


async def test_the_price_is_fetched_after_the_status_commits(client, runtime, drain, monkeypatch):
    message = await sent_sms(client, drain)
    provider = BlockingPriceLookup()
    monkeypatch.setattr(runtime.channels.for_channel("sms"), "fetch_price", provider.fetch_price, raising=False)

    callback = asyncio.create_task(post_signed(client, runtime, STATUS_PATH, status_form(message, "delivered")))
    await provider.asked.wait()
    # While Twilio is being asked, the status is committed and nobody holds the row.
    [seen] = await messages_of(client, "sam")
    assert (seen["status"], seen["cost"]) == ("delivered", None)
    await write_without_waiting(runtime, message["id"])
    provider.answer.set()
    assert (await callback).status_code == 204

    async with runtime.sessions() as session:
        stored = await session.get(Message, message["id"])
    assert (stored.cost, stored.cost_currency, stored.status_reason) == (Decimal("0.0158"), "USD", "touched")
    # A later priced status keeps the recorded price and asks no more.
    assert (await post_signed(client, runtime, STATUS_PATH, status_form(message, "read"))).status_code == 204
    assert provider.calls == 1


async def test_stop_then_start_controls_journey_sends(client, runtime, drain):
    await identify(client, "pat", phone="+14155550122", sms_opt_in=True)
    stop = await post_signed(client, runtime, INBOUND_PATH, inbound_form("SM1", "+14155550122", "  stop "))
    assert (
        stop.status_code == 200
        and "unsubscribed" in stop.text
        and stop.headers["content-type"].startswith("application/xml")
    )
    consents = (await client.get("/v1/customers/pat/consents")).json()
    assert consents["channels"]["sms"]["status"] == "opted_out"
    assert consents["history"][-1]["source"] == "sms_keyword"
    assert consents["history"][-1]["evidence"]["message_sid"] == twilio_sid("SM1")

    await track(client, "pat", "Cart Abandoned")
    await drain()
    await advance(client, HOUR)
    [skipped] = await messages_of(client, "pat")
    assert (skipped["status"], skipped["status_reason"]) == ("skipped", "sms opted out")

    start = await post_signed(client, runtime, INBOUND_PATH, inbound_form("SM2", "+14155550122", "START"))
    assert "subscribed again" in start.text
    await advance(client, 7 * 24 * HOUR)
    await track(client, "pat", "Cart Abandoned")
    await drain()
    await advance(client, HOUR)
    assert [m["status"] for m in await messages_of(client, "pat")] == ["skipped", "sent"]


async def test_localized_keywords_and_help(client, runtime):
    await identify(client, "zoe", phone="+33612345678", sms_opt_in=True, locale="fr")
    await post_signed(client, runtime, INBOUND_PATH, inbound_form("SM3", "+33612345678", "Arrêt"))
    assert (await client.get("/v1/customers/zoe/consents")).json()["channels"]["sms"]["status"] == "opted_out"
    help_reply = await post_signed(client, runtime, INBOUND_PATH, inbound_form("SM4", "+33612345678", "HELP"))
    assert "répondez ARRET pour vous désinscrire" in help_reply.text  # zoe's locale, though she wrote HELP
    stop = await post_signed(client, runtime, INBOUND_PATH, inbound_form("SM5", "+886912000000", "退訂"))
    assert "您已取消訂閱" in stop.text  # a stranger: answered in the language of the keyword
    stranger = (await client.get("/v1/customers/+886912000000/consents")).json()
    assert stranger["channels"]["sms"]["status"] == "opted_out"


async def test_keyword_answers_come_from_templates_in_the_keywords_language(client, runtime):
    spanish = await post_signed(client, runtime, INBOUND_PATH, inbound_form("SM7", "+34600000009", "AYUDA"))
    assert "responde BAJA para darte de baja" in spanish.text
    french = await post_signed(client, runtime, INBOUND_PATH, inbound_form("SM8", "+33600000009", "ARRET"))
    assert "Vous êtes désinscrit" in french.text
    english = await post_signed(client, runtime, INBOUND_PATH, inbound_form("SM9", "+14155550199", "STOP"))
    assert "You are unsubscribed" in english.text


async def test_a_sentence_with_stop_in_it_is_not_a_keyword(client, runtime):
    await identify(client, "kai", phone="+14155550133", sms_opt_in=True)
    await post_signed(client, runtime, INBOUND_PATH, inbound_form("SM6", "+14155550133", "please stop the delivery"))
    assert (await client.get("/v1/customers/kai/consents")).json()["channels"]["sms"]["status"] == "opted_in"
    [conversation] = (await client.get("/v1/conversations")).json()["items"]
    assert conversation["status"] == "waiting_for_agent"


async def test_replayed_inbound_is_handled_once(client, runtime):
    await identify(client, "ola", phone="+14155550144", sms_opt_in=True)
    form = inbound_form("SM7", "+14155550144", "STOP")
    await post_signed(client, runtime, INBOUND_PATH, form)
    replay = await post_signed(client, runtime, INBOUND_PATH, form)
    assert replay.status_code == 200 and "<Message>" not in replay.text
    assert len((await client.get("/v1/customers/ola/consents")).json()["history"]) == 2  # identify + one STOP


# --- forms Twilio never sends (the signature concatenates keys and values) ------------------


def moved_across_boundaries(form: dict) -> dict:
    """`NumMedia=0` folded into the end of the MessageSid: keys and values concatenated in key
    order read the same, so Twilio's signature still holds, but the message has a new SID."""
    reshaped = {key: value for key, value in form.items() if key != "NumMedia"}
    reshaped["MessageSid"] = form["MessageSid"] + "NumMedia" + form["NumMedia"]
    return reshaped


async def test_a_captured_start_replayed_after_a_later_stop_does_not_revert_it(client, runtime):
    from twilio.request_validator import RequestValidator

    await identify(client, "uma", phone="+14155550166", sms_opt_in=False)
    start = inbound_form("SM-start", "+14155550166", "START")
    assert (await post_signed(client, runtime, INBOUND_PATH, start)).status_code == 200
    assert (
        await post_signed(client, runtime, INBOUND_PATH, inbound_form("SM-stop", "+14155550166", "STOP"))
    ).status_code == 200
    # The attacker replays the captured START with its captured signature, as is and reshaped.
    url = runtime.settings.public_base_url + INBOUND_PATH
    captured_signature = RequestValidator(twilio_auth_token(runtime.settings)).compute_signature(url, start)
    reshaped = moved_across_boundaries(start)
    assert RequestValidator(twilio_auth_token(runtime.settings)).validate(url, reshaped, captured_signature)
    assert (await post_signed(client, runtime, INBOUND_PATH, start, signature=captured_signature)).status_code == 200
    refused = await post_signed(client, runtime, INBOUND_PATH, reshaped, signature=captured_signature)
    assert refused.status_code == 403
    consents = (await client.get("/v1/customers/uma/consents")).json()
    assert consents["channels"]["sms"]["status"] == "opted_out"


@pytest.mark.parametrize(
    "change",
    [
        {"MessageSid": "SM1"},  # too short
        {"MessageSid": "SM" + "G" * 32},  # not lower-case hex
        {"NumMedia": "zero"},
        {"NumMediaX": "0"},  # a key Twilio never sends
        {"Bod": "ySTOP"},
        {"MediaUrl0x": "https://example.com/a.jpg"},
        {"AccountSid": "AC" + "0" * 31},
        {"From": "+1415555016Body"},
    ],
)
async def test_forms_without_twilios_shape_are_refused_though_signed(client, runtime, change):
    form = {**inbound_form("SM-shape", "+14155550177", "STOP"), **change}
    response = await post_signed(client, runtime, INBOUND_PATH, form)
    assert response.status_code == 403 and "not a Twilio request" in response.json()["detail"]
    assert (await client.get("/v1/customers/+14155550177/consents")).status_code == 404


async def test_media_keys_of_a_real_mms_are_accepted(client, runtime):
    form = {
        **inbound_form("SM-mms", "+14155550188", "look"),
        "NumMedia": "2",
        "MediaUrl0": "https://api.twilio.com/a",
        "MediaContentType0": "image/jpeg",
        "MediaUrl1": "https://api.twilio.com/b",
        "MediaContentType1": "image/png",
        "FromCountry": "US",
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
        "SmsStatus": "received",
    }
    assert (await post_signed(client, runtime, INBOUND_PATH, form)).status_code == 200
