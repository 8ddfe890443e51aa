"""Twilio SMS and WhatsApp adapters: the real SDK over real HTTP against the fake Twilio."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from twilio.request_validator import RequestValidator

from orchestrator.channels.base import Channel, OutboundMessage, Outcome
from orchestrator.channels.twilio import (
    TwilioSmsAdapter,
    TwilioWhatsAppAdapter,
    accepted_result,
    result_for_api_error,
)
from orchestrator.fakes.server import free_port, serve_in_thread
from orchestrator.fakes.twilio import FakeTwilioSettings, create_fake_twilio_app

AUTH_TOKEN = "test-fake-twilio-auth-token"  # the fake's token is random unless given
ACCOUNT_SID = "AC" + "fedcba9876543210" * 2
SENDER = "+15005550006"
RECIPIENT = "+14155550100"
CONTENT_SID = "HX" + "0123456789abcdef" * 2
HTTP = httpx.Client()  # one client: a fresh one per call spends its time on SSL setup


class CallbackReceiver:
    """A tiny webhook endpoint that keeps every status callback it is sent."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.app = FastAPI()

        @self.app.post("/status/{name}")
        async def status(name: str, request: Request) -> Response:
            form = await request.form()
            signature = request.headers["x-twilio-signature"]
            self.received.append(
                {"name": name, "params": dict(form), "signature": signature, "query": dict(request.query_params)}
            )
            return Response(status_code=204)

    def for_sid(self, sid: str) -> list[dict]:
        return [c for c in self.received if c["params"]["MessageSid"] == sid]

    def statuses(self, sid: str) -> list[str]:
        return [c["params"]["MessageStatus"] for c in self.for_sid(sid)]


def recording_peers(app, peers: list[tuple[str, int]]):
    """Wrap an ASGI app to note each request's client address: one connection, one port."""

    async def asgi(scope, receive, send):
        if scope["type"] == "http":
            peers.append(tuple(scope["client"]))
        await app(scope, receive, send)

    return asgi


async def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture(scope="module", autouse=True)
def close_http_client_after_module() -> Iterator[None]:
    yield
    HTTP.close()


@pytest.fixture(scope="module")
def peers() -> list[tuple[str, int]]:
    return []


@pytest.fixture(scope="module")
def shared_fake(peers) -> Iterator[str]:
    app = create_fake_twilio_app(FakeTwilioSettings(auth_token=AUTH_TOKEN, status_latency_seconds=0.01))
    with serve_in_thread(recording_peers(app, peers)) as url:
        yield url


@pytest.fixture
def fake_url(shared_fake: str, peers) -> str:
    HTTP.delete(f"{shared_fake}/_admin/messages")
    HTTP.post(f"{shared_fake}/_admin/fail-next", json={"count": 0})
    peers.clear()
    return shared_fake


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[CallbackReceiver, str]]:
    callbacks = CallbackReceiver()
    with serve_in_thread(callbacks.app) as url:
        yield callbacks, f"{url}/status"


def witnessed(fake_url: str) -> list[dict]:
    return HTTP.get(f"{fake_url}/_admin/messages").json()


def sms(to: str = RECIPIENT, body: str = "Your order shipped", **fields) -> OutboundMessage:
    return OutboundMessage(send_key="e1:s2", channel=Channel.sms, to=to, body=body, **fields)


def whatsapp(to: str = RECIPIENT, body: str = "Your order shipped", **fields) -> OutboundMessage:
    return OutboundMessage(send_key="e1:s3", channel=Channel.whatsapp, to=to, body=body, **fields)


def adapter_for(adapter_class, api_base_url: str | None, **overrides):
    params = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": SENDER}
    return adapter_class(**(params | {"api_base_url": api_base_url} | overrides))


@pytest.fixture
async def sms_adapter(fake_url: str) -> AsyncIterator[TwilioSmsAdapter]:
    adapter = adapter_for(TwilioSmsAdapter, fake_url)
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def whatsapp_adapter(fake_url: str) -> AsyncIterator[TwilioWhatsAppAdapter]:
    adapter = adapter_for(TwilioWhatsAppAdapter, fake_url)
    yield adapter
    await adapter.aclose()


def test_adapters_declare_what_they_are() -> None:
    assert (TwilioSmsAdapter.channel, TwilioSmsAdapter.provider) == (Channel.sms, "twilio")
    assert TwilioWhatsAppAdapter.channel == Channel.whatsapp
    assert TwilioWhatsAppAdapter.provider == "twilio"
    assert TwilioSmsAdapter.max_body_length == TwilioWhatsAppAdapter.max_body_length == 1600
    assert TwilioSmsAdapter.default_rate_per_second == 1
    assert TwilioWhatsAppAdapter.default_rate_per_second == 80


def test_an_adapter_needs_a_sender() -> None:
    with pytest.raises(ValueError):
        TwilioSmsAdapter(account_sid=ACCOUNT_SID, auth_token="token")


async def test_sms_is_accepted_with_twilios_sid(sms_adapter, fake_url: str) -> None:
    result = await sms_adapter.send(sms())

    assert result.outcome is Outcome.accepted
    assert result.provider_message_id.startswith("SM") and len(result.provider_message_id) == 34
    assert result.provider_status == "queued"
    assert result.cost is None  # Twilio prices a message once it is sent, not on create
    (entry,) = witnessed(fake_url)
    assert entry["sid"] == result.provider_message_id
    assert (entry["channel"], entry["to"], entry["from"], entry["body"]) == (
        "sms", RECIPIENT, SENDER, "Your order shipped",
    )  # fmt: skip


async def test_sends_reuse_one_connection_until_closed(sms_adapter, fake_url: str, peers) -> None:
    for _ in range(3):
        assert (await sms_adapter.send(sms())).outcome is Outcome.accepted

    assert len(peers) == 3 and len(set(peers)) == 1
    await sms_adapter.aclose()
    assert (await sms_adapter.send(sms())).outcome is Outcome.accepted  # reopens on demand
    assert len(set(peers)) == 2


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("+15005550001", "21211"),  # invalid number
        ("+15005550002", "21612"),  # unreachable
        ("+15005550003", "21408"),  # region not permitted
        ("+15005550004", "21610"),  # replied STOP
        ("+15005550009", "21614"),  # not a mobile
        ("12", "21211"),
    ],
)
async def test_permanent_errors_are_permanent_failures(sms_adapter, fake_url: str, to: str, code: str) -> None:
    result = await sms_adapter.send(sms(to=to))

    assert result.outcome is Outcome.permanent_failure
    assert result.error_code == code
    assert result.error_message
    assert witnessed(fake_url) == []


@pytest.mark.parametrize(("to", "code"), [("+15005550429", "20429"), ("+15005550500", "20500")])
async def test_throttling_and_server_errors_are_transient(sms_adapter, to: str, code: str) -> None:
    result = await sms_adapter.send(sms(to=to))

    assert (result.outcome, result.error_code) == (Outcome.transient_failure, code)


async def test_a_provider_outage_is_transient_then_recovers(sms_adapter, fake_url: str) -> None:
    HTTP.post(f"{fake_url}/_admin/fail-next", json={"count": 2, "status": 503})

    results = [await sms_adapter.send(sms()) for _ in range(3)]

    assert [r.outcome for r in results] == [
        Outcome.transient_failure, Outcome.transient_failure, Outcome.accepted,
    ]  # fmt: skip
    assert results[0].error_code == "20503"
    assert len(witnessed(fake_url)) == 1


async def test_unreachable_provider_is_transient() -> None:
    adapter = adapter_for(TwilioSmsAdapter, f"http://127.0.0.1:{free_port()}")
    try:
        result = await adapter.send(sms())
    finally:
        await adapter.aclose()

    assert result.outcome is Outcome.transient_failure
    assert result.error_code is None and "Connect" in result.error_message


async def test_a_slow_provider_times_out_as_unknown() -> None:
    """The request reached Twilio and no answer came back: it may have been accepted."""
    slow = create_fake_twilio_app(FakeTwilioSettings(auth_token=AUTH_TOKEN, response_latency_seconds=0.5))
    with serve_in_thread(slow) as url:
        adapter = adapter_for(TwilioSmsAdapter, url, timeout_seconds=0.1)
        started = time.monotonic()
        try:
            result = await adapter.send(sms())
            waited = time.monotonic() - started
        finally:
            await adapter.aclose()

    assert result.outcome is Outcome.unknown
    assert "Timeout" in result.error_message
    assert waited < 0.4


async def test_wrong_credentials_are_permanent(fake_url: str) -> None:
    adapter = adapter_for(TwilioSmsAdapter, fake_url, auth_token="rotated-away")
    try:
        result = await adapter.send(sms())
    finally:
        await adapter.aclose()

    assert (result.outcome, result.error_code) == (Outcome.permanent_failure, "20003")


async def test_works_against_a_fake_mounted_under_a_prefix() -> None:
    host = FastAPI()
    host.mount("/_fake/twilio", create_fake_twilio_app(FakeTwilioSettings(auth_token=AUTH_TOKEN)))
    with serve_in_thread(host) as url:
        adapter = adapter_for(TwilioSmsAdapter, f"{url}/_fake/twilio/")
        try:
            result = await adapter.send(sms())
        finally:
            await adapter.aclose()
        assert result.outcome is Outcome.accepted
        assert len(HTTP.get(f"{url}/_fake/twilio/_admin/messages").json()) == 1


async def test_messaging_service_sends_without_a_from(fake_url: str) -> None:
    service_sid = "MG" + "a" * 32
    adapter = adapter_for(TwilioSmsAdapter, fake_url, from_number=None, messaging_service_sid=service_sid)
    try:
        result = await adapter.send(sms())
    finally:
        await adapter.aclose()

    assert (result.outcome, result.provider_status) == (Outcome.accepted, "accepted")
    (entry,) = witnessed(fake_url)
    assert (entry["messaging_service_sid"], entry["from"]) == (service_sid, None)


async def test_whatsapp_addresses_carry_the_channel_prefix(whatsapp_adapter, fake_url: str) -> None:
    result = await whatsapp_adapter.send(whatsapp())

    assert result.outcome is Outcome.accepted
    (entry,) = witnessed(fake_url)
    assert (entry["channel"], entry["to"], entry["from"]) == (
        "whatsapp", f"whatsapp:{RECIPIENT}", f"whatsapp:{SENDER}",
    )  # fmt: skip
    assert (entry["body"], entry["content_sid"]) == ("Your order shipped", None)


async def test_whatsapp_template_sends_content_sid_instead_of_body(whatsapp_adapter, fake_url: str) -> None:
    message = whatsapp(
        template_metadata={"content_sid": CONTENT_SID},
        variables={"1": "Ada", "2": 3, "customer": {"id": "u1"}, "coupon": None},
    )

    result = await whatsapp_adapter.send(message)

    assert result.outcome is Outcome.accepted
    (entry,) = witnessed(fake_url)
    assert (entry["content_sid"], entry["body"]) == (CONTENT_SID, None)
    # Only flat values travel: Twilio refuses nulls and has no use for nested records.
    assert json.loads(entry["content_variables"]) == {"1": "Ada", "2": "3"}


async def test_declared_content_variables_win_over_render_variables(whatsapp_adapter, fake_url: str) -> None:
    declared = {"1": "Ada", "2": "SPRING10"}
    message = whatsapp(
        template_metadata={"content_sid": CONTENT_SID, "content_variables": declared},
        variables={"first_name": "Ada"},
    )

    assert (await whatsapp_adapter.send(message)).outcome is Outcome.accepted
    assert json.loads(witnessed(fake_url)[0]["content_variables"]) == declared


async def test_outside_the_24h_window_only_a_template_goes_out(whatsapp_adapter) -> None:
    closed_window = "+15005550016"

    free_form = await whatsapp_adapter.send(whatsapp(to=closed_window))
    template = await whatsapp_adapter.send(whatsapp(to=closed_window, template_metadata={"content_sid": CONTENT_SID}))

    assert (free_form.outcome, free_form.error_code) == (Outcome.permanent_failure, "63016")
    assert template.outcome is Outcome.accepted


async def test_status_callbacks_arrive_signed(fake_url: str, receiver) -> None:
    callbacks, status_url = receiver
    adapter_url, message_url = f"{status_url}/adapter", f"{status_url}/message"
    adapter = adapter_for(TwilioSmsAdapter, fake_url, status_callback_url=adapter_url)
    try:
        default = await adapter.send(sms())
        overridden = await adapter.send(sms(status_callback_url=message_url))
    finally:
        await adapter.aclose()

    validator = RequestValidator(AUTH_TOKEN)
    expected = [(default, adapter_url, "adapter"), (overridden, message_url, "message")]
    for result, url, name in expected:
        sid = result.provider_message_id
        await wait_until(lambda: callbacks.statuses(sid) == ["sent", "delivered"])
        for callback in callbacks.for_sid(sid):
            assert callback["name"] == name
            assert callback["query"] == {"sk": "e1:s2"}  # the send key rides along
            assert validator.validate(url + "?sk=e1%3As2", callback["params"], callback["signature"])
    assert witnessed(fake_url)[0]["status_callback"] == adapter_url + "?sk=e1%3As2"


@pytest.mark.parametrize(
    ("http_status", "code", "outcome"),
    [
        (400, 21611, Outcome.transient_failure),  # sender queue full: drains by itself
        (400, 21211, Outcome.permanent_failure),
        (401, 20003, Outcome.permanent_failure),
        (404, 20404, Outcome.permanent_failure),
        (429, None, Outcome.transient_failure),
        (503, 20503, Outcome.transient_failure),
        (302, None, Outcome.transient_failure),
    ],
)
def test_error_classification(http_status: int, code: int | None, outcome: Outcome) -> None:
    assert result_for_api_error(http_status, code, "message").outcome is outcome


def test_a_reported_price_becomes_a_positive_cost() -> None:
    sent = SimpleNamespace(sid="SM" + "1" * 32, status="sent", price="-0.01580", price_unit="USD")

    result = accepted_result(sent)

    assert (result.cost, result.cost_currency) == (Decimal("0.01580"), "USD")
    assert result.provider_status == "sent"


async def test_a_send_is_found_at_twilio_by_what_was_sent_and_when(fake_url: str, sms_adapter) -> None:
    from datetime import datetime, timedelta, timezone

    from orchestrator.channels.base import Found

    attempted_at = datetime.now(timezone.utc)
    earlier = await sms_adapter.send(sms(body="An older reminder"))
    sent = await sms_adapter.send(sms())
    await sms_adapter.send(sms(to="+14155550111"))

    found = await sms_adapter.find_send(sms(), attempted_at)
    never_sent = await sms_adapter.find_send(sms(body="Never sent"), attempted_at)
    # Twilio's records from before the attempt are not this attempt's.
    too_late = await sms_adapter.find_send(sms(), attempted_at + timedelta(hours=1))

    assert found.outcome is Found.found
    assert [r.provider_message_id for r in found.records] == [sent.provider_message_id]
    assert earlier.provider_message_id not in [r.provider_message_id for r in found.records]
    assert never_sent.outcome is Found.not_found
    assert too_late.outcome is Found.not_found


async def test_a_whatsapp_template_is_found_on_recipient_sender_and_time(fake_url: str) -> None:
    from datetime import datetime, timezone

    from orchestrator.channels.base import Found

    adapter = adapter_for(TwilioWhatsAppAdapter, fake_url)
    template = whatsapp(template_metadata={"content_sid": CONTENT_SID})
    try:
        attempted_at = datetime.now(timezone.utc)
        sent = await adapter.send(template)
        found = await adapter.find_send(template, attempted_at)
    finally:
        await adapter.aclose()
    assert found.outcome is Found.found
    assert [r.provider_message_id for r in found.records] == [sent.provider_message_id]


async def test_the_status_of_an_accepted_message_is_fetched(fake_url: str, sms_adapter) -> None:
    from orchestrator.channels.base import Found

    sent = await sms_adapter.send(sms(to="+15005550030"))  # accepted, then undelivered
    for _ in range(100):
        fetched = await sms_adapter.fetch_status(sent.provider_message_id)
        if fetched.records[0].status == "undelivered":
            break
        await asyncio.sleep(0.02)
    assert fetched.outcome is Found.found
    assert (fetched.records[0].status, fetched.records[0].error_code) == ("undelivered", "30003")
    missing = await sms_adapter.fetch_status("SM" + "0" * 32)
    assert missing.outcome is Found.not_found


async def test_an_unreachable_twilio_is_never_taken_for_not_found() -> None:
    from datetime import datetime, timezone

    from orchestrator.channels.base import Found

    adapter = adapter_for(TwilioSmsAdapter, f"http://127.0.0.1:{free_port()}")
    try:
        looked_up = await adapter.find_send(sms(), datetime.now(timezone.utc))
        fetched = await adapter.fetch_status("SM" + "0" * 32)
    finally:
        await adapter.aclose()
    assert looked_up.outcome is Found.unreachable
    assert fetched.outcome is Found.unreachable


def test_idle_connections_are_dropped_before_servers_drop_them() -> None:
    """A send on a connection the server is closing at that moment cannot tell whether the
    request arrived; keeping idle connections shorter than uvicorn's 5 s makes it rare."""
    from orchestrator.channels.keepalive import KEEPALIVE_SECONDS
    from orchestrator.channels.twilio import RedirectableAsyncHttpClient

    async def keepalive() -> float:
        client = RedirectableAsyncHttpClient()
        try:
            return client.session.connector._keepalive_timeout
        finally:
            await client.close()

    assert asyncio.run(keepalive()) == KEEPALIVE_SECONDS < 5.0


async def test_a_connection_dropped_after_the_request_went_out_stays_unknown() -> None:
    """The server read the request and closed without answering: it may have acted on it."""

    async def read_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(read_then_hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    adapter = adapter_for(TwilioSmsAdapter, f"http://127.0.0.1:{port}")
    try:
        result = await adapter.send(sms())
    finally:
        await adapter.aclose()
        server.close()
    assert result.outcome is Outcome.unknown


async def test_refused_connections_and_dns_failures_are_retried() -> None:
    refused = adapter_for(TwilioSmsAdapter, f"http://127.0.0.1:{free_port()}")
    no_such_host = adapter_for(TwilioSmsAdapter, "http://no-such-host.invalid")
    try:
        results = [await refused.send(sms()), await no_such_host.send(sms())]
    finally:
        await refused.aclose()
        await no_such_host.aclose()
    assert [r.outcome for r in results] == [Outcome.transient_failure] * 2


async def test_a_pooled_connection_the_server_closed_is_never_written_to() -> None:
    """The server closes an idle keep-alive connection while our event loop is busy, so
    aiohttp has not read the close yet. The next send must not go out on it (that fails
    after the request was written: `unknown`), but on a new connection, once."""
    app = create_fake_twilio_app(FakeTwilioSettings(auth_token=AUTH_TOKEN))
    with serve_in_thread(app, timeout_keep_alive=0.2) as url:
        adapter = adapter_for(TwilioSmsAdapter, url)
        try:
            first = await adapter.send(sms(body="first"))
            time.sleep(1.5)  # a busy loop, not an await: the server's close waits unread in the kernel
            second = await adapter.send(sms(body="second"))
            connector = adapter._twilio().http_client.session.connector
        finally:
            await adapter.aclose()
        received = HTTP.get(f"{url}/_admin/messages").json()
    assert [first.outcome, second.outcome] == [Outcome.accepted, Outcome.accepted]
    assert [m["body"] for m in received] == ["first", "second"]
    assert connector.discarded == 1


async def test_without_the_check_that_send_would_have_been_unknown(monkeypatch) -> None:
    """The same scene with the check switched off: what the check saves us from."""
    monkeypatch.setattr("orchestrator.channels.keepalive.closed_by_peer", lambda protocol: False)
    app = create_fake_twilio_app(FakeTwilioSettings(auth_token=AUTH_TOKEN))
    with serve_in_thread(app, timeout_keep_alive=0.2) as url:
        adapter = adapter_for(TwilioSmsAdapter, url)
        try:
            await adapter.send(sms(body="first"))
            time.sleep(1.5)
            second = await adapter.send(sms(body="second"))
        finally:
            await adapter.aclose()
        received = HTTP.get(f"{url}/_admin/messages").json()
    assert second.outcome is Outcome.unknown
    assert [m["body"] for m in received] == ["first"]  # it had not arrived, yet nothing could prove it
