"""Dispatch through the real adapters: the fake Twilio over HTTP and a real SMTP server.

What arrived at the provider is asserted, not only our own rows.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from types import SimpleNamespace

import limits.aio.storage.memory
import pytest
from sqlmodel import select

from orchestrator.clock import SimulatedClock
from orchestrator.engine.dispatch import dispatch_queued_messages
from orchestrator.engine.loop import WorkerLoop
from orchestrator.events.ingest import ingest
from orchestrator.events.schemas import IdentifyCall, TrackCall
from orchestrator.startup import build_runtime
from orchestrator.storage.models import Message
from tests.conftest import START, _reset, make_settings
from tests.plans import captured, plan_of
from tests.providers import fake_twilio, smtp_server


@pytest.fixture(scope="module")
def twilio():
    with fake_twilio() as fake:
        yield fake


@pytest.fixture(scope="module")
def smtp():
    with smtp_server() as server:
        yield server


@pytest.fixture
async def runtime_on_providers(database_url, twilio, smtp, tmp_path, request):
    twilio.clear()
    smtp[0].messages.clear()
    await _reset(database_url)
    overrides = getattr(request, "param", {})
    settings = make_settings(
        database_url,
        sms_provider="twilio",
        whatsapp_provider="twilio",
        email_provider="smtp",
        twilio_api_base_url=twilio.url,
        fake_twilio_auth_token=twilio.auth_token,
        smtp_port=smtp[1],
        public_base_url="http://127.0.0.1:9",
        **overrides,
    )
    runtime = await build_runtime(settings, clock=SimulatedClock(START))
    yield runtime
    await runtime.aclose()


async def send_events(runtime, *calls) -> None:
    async with runtime.sessions() as session, session.begin():
        await ingest(session, runtime, list(calls))


async def messages(runtime) -> list[Message]:
    async with runtime.sessions() as session:
        return list((await session.exec(select(Message).order_by(Message.id))).all())


async def later(runtime, **delta) -> None:
    runtime.clock.advance(timedelta(**delta))
    await WorkerLoop(runtime).drain()


async def test_abandoned_cart_sms_reaches_twilio(runtime_on_providers, twilio):
    runtime = runtime_on_providers
    await send_events(
        runtime,
        IdentifyCall(userId="sam", traits={"phone": "+14155550100", "sms_opt_in": True}),
        TrackCall(userId="sam", event="Cart Abandoned"),
    )
    await later(runtime, hours=1)
    [arrived] = twilio.witnessed()
    assert arrived["to"] == "+14155550100" and arrived["from"] == "+15005550006"
    assert "CART15-SAM" in arrived["body"]
    # The send key rides in the query, so a callback finds its message even without the SID.
    assert arrived["status_callback"] == "http://127.0.0.1:9/webhooks/twilio/status?sk=1%3Adiscount-sms"
    [message] = await messages(runtime)
    assert message.status == "sent" and message.provider == "twilio"
    assert message.provider_message_id == arrived["sid"]


async def test_welcome_email_reaches_the_smtp_server(runtime_on_providers, smtp):
    runtime = runtime_on_providers
    await send_events(
        runtime,
        IdentifyCall(userId="amelie", traits={"email": "amelie@example.fr", "locale": "fr"}),
        TrackCall(userId="amelie", event="Signed Up"),
    )
    await WorkerLoop(runtime).drain()
    [mail] = smtp[0].messages
    assert mail["To"] == "amelie@example.fr"
    assert mail["From"] == "Orchestrator <hello@orchestrator.local>"
    assert mail["Subject"] == "Bienvenue, cher client !"
    assert "Merci pour votre inscription" in mail.get_body(("plain",)).get_content()
    [message] = await messages(runtime)
    assert message.status == "sent" and message.provider_message_id == mail["Message-ID"]


async def test_post_purchase_whatsapp_reaches_twilio_with_the_prefix(runtime_on_providers, twilio):
    runtime = runtime_on_providers
    await send_events(
        runtime,
        IdentifyCall(userId="lola", traits={"phone": "+34600000001", "whatsapp_opt_in": True}),
        TrackCall(userId="lola", event="Order Completed", properties={"order_id": "B-7"}),
    )
    await later(runtime, days=3)
    [message] = await messages(runtime)
    assert message.status == "sent", message.status_reason
    [arrived] = twilio.witnessed()
    assert (arrived["to"], arrived["from"]) == ("whatsapp:+34600000001", "whatsapp:+14155238886")
    # Business-initiated WhatsApp goes out as the approved template, with its variables.
    assert arrived["content_sid"] == "HX2f7b7c6d9e0a4b1c8d3e5f60718293a4"
    assert json.loads(arrived["content_variables"]) == {"1": "there", "2": "B-7"}


async def test_transient_errors_are_retried_with_backoff(runtime_on_providers, twilio):
    runtime = runtime_on_providers
    await send_events(
        runtime,
        IdentifyCall(userId="ann", traits={"phone": "+14155550111", "sms_opt_in": True}),
        TrackCall(userId="ann", event="Cart Abandoned"),
    )
    twilio.fail_next(2, status=503)
    await later(runtime, hours=1)
    [message] = await messages(runtime)
    assert (message.status, message.attempts, message.error_code) == ("queued", 1, "20503")
    await later(runtime, minutes=1)  # past the first backoff (at most 2 s)...
    await later(runtime, minutes=1)  # ...and the second (at most 4 s)
    [message] = await messages(runtime)
    assert (message.status, message.attempts) == ("sent", 3)
    assert len(twilio.witnessed()) == 1


async def test_permanent_errors_fail_at_once_with_the_providers_code(runtime_on_providers, twilio):
    runtime = runtime_on_providers
    await send_events(
        runtime,
        IdentifyCall(userId="bad", traits={"phone": "+15005550001", "sms_opt_in": True}),
        TrackCall(userId="bad", event="Cart Abandoned"),
    )
    await later(runtime, hours=1)
    await later(runtime, hours=1)
    [message] = await messages(runtime)
    assert (message.status, message.error_code, message.attempts) == ("failed", "21211", 1)
    assert twilio.witnessed() == []


async def test_transient_errors_give_up_visibly(runtime_on_providers, twilio):
    runtime = runtime_on_providers
    await send_events(
        runtime,
        IdentifyCall(userId="busy", traits={"phone": "+15005550500", "sms_opt_in": True}),
        TrackCall(userId="busy", event="Cart Abandoned"),
    )
    await later(runtime, hours=1)
    for _ in range(10):
        await later(runtime, minutes=15)
    [message] = await messages(runtime)
    assert message.status == "failed" and message.attempts == 8
    assert message.status_reason.startswith("gave up after 8 attempts")


@pytest.mark.parametrize("runtime_on_providers", [{"sms_rate_per_second": 2}], indirect=True)
async def test_send_rate_is_honoured(runtime_on_providers, twilio, monkeypatch):
    runtime = runtime_on_providers
    # The moving window counts wall-clock seconds: on a loaded machine the pass below can
    # outlast one and earn a second budget. Its clock stands still here, so the pass falls
    # in one second whatever the machine's speed.
    frozen = time.time()
    monkeypatch.setattr(limits.aio.storage.memory, "time", SimpleNamespace(time=lambda: frozen))
    for i in range(5):
        await send_events(
            runtime,
            IdentifyCall(userId=f"r{i}", traits={"phone": f"+1415555020{i}", "sms_opt_in": True}),
            TrackCall(userId=f"r{i}", event="Cart Abandoned"),
        )
    await later(runtime, hours=1)
    # One pass sends what the 2-per-second budget allows; the rest wait, unharmed.
    statuses = sorted(m.status for m in await messages(runtime))
    assert statuses == ["queued", "queued", "queued", "sent", "sent"]
    assert len(twilio.witnessed()) == 2
    assert all(m.attempts == 0 for m in await messages(runtime) if m.status == "queued")


async def test_a_permanent_failure_falls_back_to_the_steps_fallback_channel(
    runtime_on_providers, twilio, smtp, tmp_path
):
    from orchestrator.journeys.loader import parse_journey

    runtime = runtime_on_providers
    journey = parse_journey(
        "id: notice\ntrigger: {event: Shipped}\nsteps:\n  - id: tell\n    send:\n"
        "      channel: sms\n      template: nps-question\n      fallback: email\n"
        "      transactional: true\n",
        tmp_path / "notice.yaml",
    )
    runtime.catalog.add_current(journey)
    await send_events(
        runtime,
        IdentifyCall(userId="val", traits={"phone": "+15005550001", "email": "val@example.com"}),
        TrackCall(userId="val", event="Shipped"),
    )
    await WorkerLoop(runtime).drain()
    sms, email = sorted(await messages(runtime), key=lambda m: m.id)
    assert (sms.channel, sms.status, sms.error_code) == ("sms", "failed", "21211")
    assert (email.channel, email.status, email.send_key) == ("email", "sent", sms.send_key + ":fallback")
    assert [m["To"] for m in smtp[0].messages] == ["val@example.com"]


async def test_a_send_cut_off_too_often_fails_and_falls_back(runtime_on_providers, twilio, smtp, tmp_path):
    """The reconciler's give-up (past `MAX_REQUEUES` sends the provider never got) ends a
    message as a failure does: `failed`, and its fallback channel tried."""
    import sqlalchemy as sa

    from orchestrator.engine.reconcile import reconcile_round
    from orchestrator.engine.retry import MAX_REQUEUES
    from orchestrator.journeys.loader import parse_journey

    runtime = runtime_on_providers
    journey = parse_journey(
        "id: notice\ntrigger: {event: Shipped}\nsteps:\n  - id: tell\n    send:\n"
        "      channel: sms\n      template: nps-question\n      fallback: email\n"
        "      transactional: true\n",
        tmp_path / "notice.yaml",
    )
    runtime.catalog.add_current(journey)
    await send_events(
        runtime,
        IdentifyCall(userId="val", traits={"phone": "+14155550199", "email": "val@example.com"}),
        TrackCall(userId="val", event="Shipped"),
    )
    await WorkerLoop(runtime).drain()
    # As if every send so far had been cut off before Twilio got it, the last one just now.
    twilio.clear()
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        await session.exec(
            sa.update(Message)
            .where(Message.channel == "sms")
            .values(
                status="sending", provider_message_id=None, sending_at=now, next_attempt_at=now, requeues=MAX_REQUEUES
            )
        )
    runtime.clock.advance(timedelta(hours=1))

    report = await reconcile_round(runtime)
    await WorkerLoop(runtime).drain()

    sms, email = sorted(await messages(runtime), key=lambda m: m.id)
    assert report.gave_up == 1
    assert (sms.status, sms.requeues) == ("failed", MAX_REQUEUES) and "cut off" in sms.status_reason
    assert (email.channel, email.status, email.send_key) == ("email", "sent", sms.send_key + ":fallback")
    assert twilio.witnessed() == [] and [m["To"] for m in smtp[0].messages] == ["val@example.com"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_claim_reads_the_partial_index_of_queued_messages(runtime):
    """Every worker polls the claim. `ix_messages_queued` holds only queued messages, by channel
    and due time: on statistics from when most messages were queued, the planner scanned the
    whole table instead of `ix_messages_dispatch` (status, next_attempt_at), every poll."""
    await send_events(
        runtime,
        IdentifyCall(userId="sam", traits={"phone": "+14155550100", "sms_opt_in": True}),
        TrackCall(userId="sam", event="Cart Abandoned"),
    )
    runtime.clock.advance(timedelta(hours=1))
    with captured(runtime.engine, "UPDATE messages SET status") as statements:
        await dispatch_queued_messages(runtime)
    claim = next(s for s in statements if "FOR UPDATE SKIP LOCKED" in s[0])
    plan = await plan_of(runtime.engine, *claim, priced_out=("enable_seqscan", "enable_bitmapscan"))
    assert "ix_messages_queued" in plan, plan
