"""SendGridEmailAdapter against the fake SendGrid served over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from fastapi import FastAPI, Response

from orchestrator.channels.base import Channel, OutboundMessage, Outcome
from orchestrator.channels.sendgrid import SendGridEmailAdapter
from orchestrator.clock import SimulatedClock
from orchestrator.fakes.sendgrid import (
    DEFAULT_API_KEY,
    RATE_LIMITED_DOMAIN,
    SERVER_ERROR_DOMAIN,
    FakeSendGridSettings,
    create_fake_sendgrid_app,
)
from orchestrator.fakes.server import free_port, serve_in_thread

SCOPELESS_KEY = "SG.key-without-mail-send"
BAD_KEY_MESSAGE = "The provided authorization grant is invalid, expired, or revoked"
# One clock for the fake and the adapter, so retry delays come out exact.
FROZEN_NOW = 1_750_000_000.0
FROZEN_CLOCK = SimulatedClock(datetime.fromtimestamp(FROZEN_NOW, timezone.utc))


@pytest.fixture(scope="module")
def fake_app() -> FastAPI:
    settings = FakeSendGridSettings(
        keys_without_mail_send=frozenset({SCOPELESS_KEY}),
        rate_limit_reset_seconds=30,
        clock=FROZEN_CLOCK,
    )
    return create_fake_sendgrid_app(settings)


@pytest.fixture(scope="module")
def base_url(fake_app) -> Iterator[str]:
    with serve_in_thread(fake_app) as url:
        yield url


@pytest.fixture
def witness(fake_app):
    fake_app.state.witness.clear()
    return fake_app.state.witness


def make_adapter(base_url: str, **options) -> SendGridEmailAdapter:
    settings = dict(
        api_key=DEFAULT_API_KEY,
        from_address="hello@shop.example",
        from_name="Shop",
        api_base_url=base_url,
        timeout=2,
        clock=FROZEN_CLOCK,
    )
    settings.update(options)
    return SendGridEmailAdapter(**settings)


@pytest.fixture
async def adapter(base_url):
    adapter = make_adapter(base_url)
    yield adapter
    await adapter.aclose()


def outbound(to: str = "ana@customer.example", **overrides) -> OutboundMessage:
    fields = dict(
        send_key="journey:welcome:step-1:ana",
        channel=Channel.email,
        to=to,
        subject="Welcome, Ana",
        body="Hello Ana",
        html="<p>Hello <b>Ana</b></p>",
        marketing=True,
        unsubscribe_url="https://shop.example/u/abc123",
    )
    fields.update(overrides)
    return OutboundMessage(**fields)


async def test_accepted_with_sendgrid_message_id(adapter, witness) -> None:
    result = await adapter.send(outbound())

    assert result.outcome is Outcome.accepted
    [entry] = witness.messages()
    assert result.provider_message_id == entry["message_id"]
    request = entry["request"]
    assert request["personalizations"] == [{"to": [{"email": "ana@customer.example"}]}]
    assert request["from"] == {"email": "hello@shop.example", "name": "Shop"}
    assert request["subject"] == "Welcome, Ana"
    assert request["content"] == [
        {"type": "text/plain", "value": "Hello Ana"},
        {"type": "text/html", "value": "<p>Hello <b>Ana</b></p>"},
    ]
    assert request["custom_args"] == {"send_key": "journey:welcome:step-1:ana"}


async def test_marketing_mail_carries_one_click_unsubscribe(adapter, witness) -> None:
    await adapter.send(outbound(marketing=True))

    assert witness.messages()[0]["request"]["headers"] == {
        "List-Unsubscribe": "<https://shop.example/u/abc123>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"marketing": False}, id="transactional"),
        pytest.param({"unsubscribe_url": None}, id="marketing-without-url"),
    ],
)
async def test_no_unsubscribe_headers_without_marketing_url(adapter, witness, overrides) -> None:
    await adapter.send(outbound(**overrides))

    assert "headers" not in witness.messages()[0]["request"]


async def test_text_only_message_sends_one_content_block(adapter, witness) -> None:
    await adapter.send(outbound(html=None))

    content = witness.messages()[0]["request"]["content"]
    assert content == [{"type": "text/plain", "value": "Hello Ana"}]


async def test_concurrent_sends_share_one_client(adapter, witness) -> None:
    sends = [adapter.send(outbound(to=f"c{i}@customer.example")) for i in range(5)]
    results = await asyncio.gather(*sends)

    assert {r.outcome for r in results} == {Outcome.accepted}
    assert len({r.provider_message_id for r in results}) == 5
    assert len(witness.messages()) == 5


async def test_rate_limit_is_transient_until_sendgrid_reset(adapter, witness) -> None:
    result = await adapter.send(outbound(to=f"ana@{RATE_LIMITED_DOMAIN}"))

    assert result.outcome is Outcome.transient_failure
    assert result.error_code == "429"
    assert result.error_message == "too many requests"
    assert result.retry_after_seconds == 30  # X-RateLimit-Reset minus now, on one clock
    assert witness.messages() == []


async def test_server_error_is_transient(adapter) -> None:
    result = await adapter.send(outbound(to=f"ana@{SERVER_ERROR_DOMAIN}"))

    assert result.outcome is Outcome.transient_failure
    assert result.error_code == "500"


@pytest.mark.parametrize(
    ("api_key", "code", "message"),
    [
        pytest.param("SG.revoked", "401", BAD_KEY_MESSAGE, id="401"),
        pytest.param(SCOPELESS_KEY, "403", "access forbidden", id="403"),
    ],
)
async def test_credential_problems_are_permanent(base_url, api_key, code, message) -> None:
    adapter = make_adapter(base_url, api_key=api_key)
    try:
        result = await adapter.send(outbound())
    finally:
        await adapter.aclose()

    assert result.outcome is Outcome.permanent_failure
    assert (result.error_code, result.error_message) == (code, message)


async def test_invalid_recipient_is_permanent_with_sendgrid_message(adapter) -> None:
    result = await adapter.send(outbound(to="not-an-address"))

    assert result.outcome is Outcome.permanent_failure
    assert result.error_code == "400"
    assert result.error_message == "Does not contain a valid address."


async def test_server_down_is_transient() -> None:
    adapter = make_adapter(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    try:
        result = await adapter.send(outbound())
    finally:
        await adapter.aclose()

    assert result.outcome is Outcome.transient_failure
    assert result.error_code == "connection_error"


def misbehaving_sendgrid(status: int, headers: dict[str, str], delay: float = 0.0) -> FastAPI:
    """What sits in front of SendGrid can differ from SendGrid: a proxy adding Retry-After
    or answering with HTML, or a stalled connection."""
    app = FastAPI()

    @app.post("/v3/mail/send")
    async def mail_send() -> Response:
        await asyncio.sleep(delay)
        return Response("<html>busy</html>", status_code=status, headers=headers, media_type="text/html")

    return app


RETRY_AT = datetime.fromtimestamp(FROZEN_NOW, timezone.utc) + timedelta(seconds=12)
RATE_LIMIT_HINTS = {
    # scenario: (429 response headers, expected retry_after_seconds)
    "delta-seconds": ({"Retry-After": "7"}, 7),
    "http-date": ({"Retry-After": format_datetime(RETRY_AT, usegmt=True)}, 12),
    "retry-after-wins": ({"Retry-After": "7", "X-RateLimit-Reset": str(int(FROZEN_NOW) + 60)}, 7),
    "no-hint": ({}, None),
}


@pytest.fixture(scope="module")
def misbehaving_url() -> Iterator[str]:
    """One server, one misbehaviour per path prefix."""
    parent = FastAPI()
    for scenario, (headers, _) in RATE_LIMIT_HINTS.items():
        parent.mount(f"/{scenario}", misbehaving_sendgrid(429, headers))
    parent.mount("/stalled", misbehaving_sendgrid(202, {}, delay=0.5))
    with serve_in_thread(parent) as url:
        yield url


@pytest.mark.parametrize("scenario", list(RATE_LIMIT_HINTS))
async def test_retry_after_header(misbehaving_url, scenario) -> None:
    adapter = make_adapter(f"{misbehaving_url}/{scenario}")
    try:
        result = await adapter.send(outbound())
    finally:
        await adapter.aclose()

    assert result.outcome is Outcome.transient_failure
    assert result.retry_after_seconds == RATE_LIMIT_HINTS[scenario][1]
    assert result.error_message == "HTTP 429 Too Many Requests"  # not SendGrid's JSON: the reason


async def test_a_read_timeout_is_unknown_not_retried(misbehaving_url) -> None:
    """SendGrid may have queued a message whose answer timed out: retrying could send it twice."""
    adapter = make_adapter(f"{misbehaving_url}/stalled", timeout=0.1)
    try:
        result = await adapter.send(outbound())
    finally:
        await adapter.aclose()

    assert result.outcome is Outcome.unknown
    assert result.error_code == "timeout"


async def test_works_with_fake_mounted_under_a_prefix() -> None:
    parent, fake = FastAPI(), create_fake_sendgrid_app()
    parent.mount("/sendgrid", fake)
    with serve_in_thread(parent) as url:
        adapter = make_adapter(f"{url}/sendgrid/")
        try:
            result = await adapter.send(outbound())
        finally:
            await adapter.aclose()

    assert result.outcome is Outcome.accepted
    assert [m["message_id"] for m in fake.state.witness.messages()] == [result.provider_message_id]
