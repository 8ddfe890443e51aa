"""SendGrid's Event Webhook, end to end through the app: signatures, replays, shuffles, and
what bounces, spam reports and unsubscribes do to later sends."""

from __future__ import annotations

import base64
import json
import random
import time

import pytest
from sqlmodel import col, select

from orchestrator.clock import utc
from orchestrator.storage.feedback_models import Consent, MessageStatusEvent, Suppression, WebhookReceipt
from orchestrator.storage.models import Customer, Message
from tests.conftest import START

EVENTS_URL = "/webhooks/sendgrid/events"
SIGNATURE, TIMESTAMP = "X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp"
DAY = 86400


async def welcome_email(client, drain, runtime, user_id="ann", email="ann@example.com") -> Message:
    """A real welcome e-mail, sent through the journey (local e-mail provider)."""
    assert (await client.post("/v1/identify", json={"userId": user_id, "traits": {"email": email}})).status_code == 200
    assert (await client.post("/v1/track", json={"userId": user_id, "event": "Signed Up"})).status_code == 200
    await drain()
    return await message_of(runtime, user_id)


async def message_of(runtime, user_id: str, step: str = "welcome-email") -> Message:
    async with runtime.sessions() as session:
        return (
            await session.exec(
                select(Message)
                .join(Customer, col(Customer.id) == Message.customer_id)
                .where(Customer.user_id == user_id, Message.step_id == step)
            )
        ).one()


async def rows(runtime, model, *where) -> list:
    async with runtime.sessions() as session:
        return list((await session.exec(select(model).where(*where).order_by(col(model.id)))).all())


def event(message: Message, kind: str, event_id: str, minute: int = 0, **fields) -> dict:
    """An event as SendGrid posts it: custom args at the top level, sg_message_id suffixed."""
    return {
        "email": message.to_address,
        "timestamp": int(START.timestamp()) + 60 * minute,
        "event": kind,
        "sg_event_id": event_id,
        "sg_message_id": f"{message.provider_message_id}.filterdrecv-5645d9c87f-6r2ch-1",
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "send_key": message.send_key,
        **fields,
    }


async def post(client, events, headers=None):
    """Signed as SendGrid signs, unless the test passes its own headers."""
    body = json.dumps(events).encode()
    return await client.post(
        EVENTS_URL, content=body, headers=headers if headers is not None else signed(client.sendgrid_signing_key, body)
    )


# --- signatures ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def signing_key(runtime, client):
    """A real P-256 key pair; the public half configured as SendGrid's verification key, the
    private half what `post` signs with."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private_key = ec.generate_private_key(ec.SECP256R1())
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    runtime.settings.sendgrid_webhook_public_key = base64.b64encode(der).decode()
    client.sendgrid_signing_key = private_key
    yield private_key
    runtime.settings.sendgrid_webhook_public_key = None


def signed(private_key, body: bytes, timestamp: str | None = None) -> dict[str, str]:
    """Headers as SendGrid sends them: ECDSA/SHA-256 over timestamp (now) + body, base64 DER."""
    timestamp = timestamp or str(int(time.time()))
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    signature = private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE: base64.b64encode(signature).decode(), TIMESTAMP: timestamp}


async def test_a_signed_batch_is_applied(client, drain, runtime, signing_key):
    message = await welcome_email(client, drain, runtime)
    body = json.dumps([event(message, "delivered", "ev-1")]).encode()
    response = await client.post(EVENTS_URL, content=body, headers=signed(signing_key, body))
    assert response.status_code == 200 and response.json()["applied"] == 1
    assert (await message_of(runtime, "ann")).status == "delivered"


async def test_forged_and_unsigned_batches_get_403_and_change_nothing(client, drain, runtime, signing_key):
    from cryptography.hazmat.primitives.asymmetric import ec

    message = await welcome_email(client, drain, runtime)
    body = json.dumps([event(message, "delivered", "ev-1")]).encode()
    good = signed(signing_key, body)
    attempts = [
        (body, {}),  # unsigned
        (body, {TIMESTAMP: good[TIMESTAMP]}),  # no signature
        (body, {SIGNATURE: good[SIGNATURE]}),  # no timestamp
        (body.replace(b"delivered", b"bounce"), good),  # body altered after signing
        (body, {**good, TIMESTAMP: str(int(good[TIMESTAMP]) + 1)}),  # timestamp altered
        (body, signed(ec.generate_private_key(ec.SECP256R1()), body)),  # someone else's key
        (body, {**good, SIGNATURE: "not base64 at all!"}),
    ]
    for content, headers in attempts:
        response = await client.post(EVENTS_URL, content=content, headers=headers)
        assert response.status_code == 403, headers
    assert (await message_of(runtime, "ann")).status == "sent"
    assert await rows(runtime, MessageStatusEvent) == []


async def test_a_stale_signed_batch_is_refused_as_a_replay(client, drain, runtime, signing_key):
    message = await welcome_email(client, drain, runtime)
    body = json.dumps([event(message, "delivered", "ev-1")]).encode()
    max_age = runtime.settings.sendgrid_webhook_max_age_seconds
    for skew in (-max_age - 60, max_age + 60):  # captured long ago, or dated ahead to outlive the window
        stale = signed(signing_key, body, timestamp=str(int(time.time() + skew)))
        response = await client.post(EVENTS_URL, content=body, headers=stale)
        assert response.status_code == 403 and "Timestamp" in response.json()["detail"]
    assert (await message_of(runtime, "ann")).status == "sent"


async def test_without_a_configured_key_every_batch_is_refused(client, drain, runtime, signing_key):
    """Real SendGrid (or none) and no verification key: nothing can be verified, so nothing is taken."""
    runtime.settings.sendgrid_webhook_public_key = None
    message = await welcome_email(client, drain, runtime)
    for headers in ({}, None):  # unsigned, and signed with a key nobody configured
        response = await post(client, [event(message, "delivered", "ev-1")], headers)
        assert response.status_code == 403 and "SENDGRID_WEBHOOK_PUBLIC_KEY" in response.json()["detail"]
    assert (await message_of(runtime, "ann")).status == "sent"


async def test_only_an_explicit_setting_turns_the_check_off(client, drain, runtime, caplog):
    from orchestrator.startup import warn_about_webhook_verification

    runtime.settings.sendgrid_webhook_verify_signatures = False
    with caplog.at_level("WARNING", logger="orchestrator"):
        warn_about_webhook_verification(runtime.settings)
    assert "ORCHESTRATOR_SENDGRID_WEBHOOK_VERIFY_SIGNATURES=false" in caplog.text
    message = await welcome_email(client, drain, runtime)
    assert (await post(client, [event(message, "delivered", "ev-1")], headers={})).json()["applied"] == 1


# --- idempotency and order ----------------------------------------------------------------


async def test_replayed_and_shuffled_events_end_in_one_state_counted_once(client, drain, runtime):
    message = await welcome_email(client, drain, runtime)
    events = [
        event(message, "processed", "ev-p", 0),
        event(message, "deferred", "ev-d", 1, response="421 try later"),
        event(message, "delivered", "ev-dl", 5, response="250 OK"),
        event(message, "open", "ev-o1", 9, sg_machine_open=False),
        event(message, "open", "ev-o2", 30),
        event(message, "click", "ev-c", 10, url="https://shop.example/"),
    ]
    shuffled = random.Random(7).sample(events, len(events))
    first = await post(client, shuffled[:4])
    second = await post(client, shuffled[2:])  # overlaps the first batch
    replay = await post(client, list(reversed(events)))  # SendGrid retrying everything
    assert first.json()["applied"] == 4 and second.json() == {**second.json(), "applied": 2, "duplicates": 2}
    assert replay.json()["duplicates"] == 6 and replay.json()["applied"] == 0
    message = await message_of(runtime, "ann")
    assert message.status == "delivered"
    assert utc(message.delivered_at).timestamp() == events[2]["timestamp"]
    assert utc(message.first_opened_at).timestamp() == events[3]["timestamp"]
    assert utc(message.first_clicked_at).timestamp() == events[5]["timestamp"]
    history = await rows(runtime, MessageStatusEvent, MessageStatusEvent.message_id == message.id)
    assert sorted(h.status for h in history) == ["click", "deferred", "delivered", "open", "open", "processed"]
    assert {h.source for h in history} == {"sendgrid"}


async def test_events_find_their_message_by_sendgrid_id_without_a_send_key(client, drain, runtime):
    message = await welcome_email(client, drain, runtime)
    bare = event(message, "delivered", "ev-1")
    del bare["send_key"]
    assert (await post(client, [bare])).json()["applied"] == 1
    assert (await message_of(runtime, "ann")).status == "delivered"


async def test_unknown_messages_and_junk_do_not_fail_the_batch(client, drain, runtime):
    message = await welcome_email(client, drain, runtime)
    stranger = {**event(message, "delivered", "ev-x"), "send_key": "not-ours", "sg_message_id": "nope.filter"}
    response = await post(client, [stranger, {"event": "delivered"}, "junk", event(message, "delivered", "ev-1")])
    assert response.status_code == 200
    assert response.json() == {"applied": 1, "duplicates": 0, "unmatched": 1, "invalid": 2}
    assert [r.external_id for r in await rows(runtime, WebhookReceipt)] == ["ev-1"]  # strangers leave no trace


@pytest.mark.parametrize("body", [b"not json", b'{"event": "delivered"}'])
async def test_a_body_that_is_not_an_array_of_events_is_refused(client, body):
    assert (
        await client.post(EVENTS_URL, content=body, headers=signed(client.sendgrid_signing_key, body))
    ).status_code == 400


# --- what events do to later sends -------------------------------------------------------


async def post_purchase_email(client, runtime, user_id="ann") -> Message:
    """The post-purchase journey e-mails three days after an order (no WhatsApp opt-in)."""
    assert (await client.post("/v1/track", json={"userId": user_id, "event": "Order Completed"})).status_code == 200
    assert (await client.post("/v1/admin/clock/advance", json={"seconds": 3 * DAY})).status_code == 200
    return await message_of(runtime, user_id, "email-follow-up")


async def test_a_hard_bounce_fails_the_message_and_suppresses_the_address(client, drain, runtime):
    message = await welcome_email(client, drain, runtime)
    bounce = event(
        message,
        "bounce",
        "ev-b",
        type="bounce",
        status="5.1.1",
        reason="550 5.1.1 The email account that you tried to reach does not exist.",
    )
    await post(client, [bounce])
    message = await message_of(runtime, "ann")
    assert (message.status, message.error_code) == ("failed", "5.1.1")
    assert message.status_reason.startswith("550 5.1.1")
    [suppression] = await rows(runtime, Suppression)
    assert (suppression.channel, suppression.address, suppression.reason) == ("email", "ann@example.com", "hard_bounce")
    assert await rows(runtime, Consent, Consent.source == "hard_bounce") == []  # suppression only
    later = await post_purchase_email(client, runtime)
    assert (later.status, later.status_reason) == ("skipped", "address suppressed (email)")


async def test_a_bounce_after_delivery_keeps_delivered_but_suppresses(client, drain, runtime):
    message = await welcome_email(client, drain, runtime)
    late_bounce = event(message, "bounce", "ev-2", 2, type="bounce", status="5.0.0")
    await post(client, [event(message, "delivered", "ev-1", 1), late_bounce])
    assert (await message_of(runtime, "ann")).status == "delivered"
    assert len(await rows(runtime, Suppression)) == 1


async def test_a_blocked_message_is_undelivered_but_the_address_stays(client, drain, runtime):
    message = await welcome_email(client, drain, runtime)
    await post(client, [event(message, "bounce", "ev-1", type="blocked", status="4.0.0", reason="blocked by policy")])
    message = await message_of(runtime, "ann")
    assert (message.status, message.error_code) == ("undelivered", "4.0.0")
    assert await rows(runtime, Suppression) == []


async def test_a_dropped_message_fails(client, drain, runtime):
    message = await welcome_email(client, drain, runtime)
    await post(client, [event(message, "dropped", "ev-1", reason="Invalid")])
    message = await message_of(runtime, "ann")
    assert (message.status, message.error_code, message.status_reason) == ("failed", "dropped", "Invalid")


async def test_a_spam_report_suppresses_and_opts_out(client, drain, runtime):
    message = await welcome_email(client, drain, runtime)
    await post(client, [event(message, "spamreport", "ev-1")])
    [consent] = await rows(runtime, Consent, Consent.channel == "email")
    assert (consent.status, consent.source, consent.customer_id) == ("opted_out", "spam_report", message.customer_id)
    assert consent.evidence["sg_event_id"] == "ev-1"
    assert [(s.address, s.reason) for s in await rows(runtime, Suppression)] == [("ann@example.com", "spam_report")]
    assert (await message_of(runtime, "ann")).status == "delivered"  # they saw it to report it
    later = await post_purchase_email(client, runtime)
    assert (later.status, later.status_reason) == ("skipped", "address suppressed (email)")


@pytest.mark.parametrize("kind", ["unsubscribe", "group_unsubscribe"])
async def test_a_provider_unsubscribe_opts_out(client, drain, runtime, kind):
    message = await welcome_email(client, drain, runtime)
    await post(client, [event(message, kind, "ev-1", asm_group_id=42), event(message, kind, "ev-2")])
    [consent] = await rows(runtime, Consent, Consent.channel == "email")  # the second changes nothing
    assert (consent.status, consent.source) == ("opted_out", "provider_opt_out")
    assert consent.evidence["asm_group_id"] == 42
    later = await post_purchase_email(client, runtime)
    assert (later.status, later.status_reason) == ("skipped", "email opted out")
