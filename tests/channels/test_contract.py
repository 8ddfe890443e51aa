"""One contract every real channel adapter passes, table-driven.

For each adapter, against its real wire-format stand-in: a message is accepted and arrives;
a permanent provider error is a permanent failure; a provider that is down is a transient
failure and the same message goes through once it is back; and the dispatcher honours a
send-rate limit with this adapter (what arrives at the provider is counted, not our rows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlmodel import select

from orchestrator.channels.base import Channel, ChannelAdapter, OutboundMessage, Outcome
from orchestrator.channels.registry import ChannelRegistry, local_registry
from orchestrator.channels.sendgrid import SendGridEmailAdapter
from orchestrator.channels.smtp import SmtpEmailAdapter
from orchestrator.channels.twilio import TwilioSmsAdapter, TwilioWhatsAppAdapter
from orchestrator.clock import SimulatedClock
from orchestrator.engine.dispatch import dispatch_channel
from orchestrator.fakes.sendgrid import DEFAULT_API_KEY, create_fake_sendgrid_app
from orchestrator.fakes.server import free_port, serve_in_thread
from orchestrator.fakes.twilio import FakeTwilioSettings, create_fake_twilio_app
from orchestrator.startup import build_runtime
from orchestrator.storage.models import Customer, Message
from tests.conftest import START, make_settings
from tests.providers import SmtpInbox

AUTH_TOKEN = "test-fake-twilio-auth-token"  # the fake's token is random unless given

TWILIO_SID = "AC" + "1" * 32


@dataclass
class Contract:
    name: str
    channel: Channel
    make_adapter: Callable[[int], ChannelAdapter]  # built for a port
    serve: Callable[[int], object]  # context manager: the provider up on that port
    arrived: Callable[[object], int]  # how many messages the provider accepted
    good_to: str
    permanent_to: str


def _twilio_serve(port: int):
    return serve_in_thread(
        create_fake_twilio_app(FakeTwilioSettings(auth_token=AUTH_TOKEN, status_latency_seconds=0)), port=port
    )


def _http_count(path: str, key: str | None = None) -> Callable[[str], int]:
    def count(url: str) -> int:
        body = httpx.get(url + path).json()
        return len(body[key] if key else body)

    return count


@contextmanager
def _smtp_serve(port: int) -> Iterator[SmtpInbox]:
    inbox = RejectingInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


class RejectingInbox(SmtpInbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def _twilio(adapter_class):
    return lambda port: adapter_class(
        account_sid=TWILIO_SID,
        auth_token=AUTH_TOKEN,
        from_number="+15005550006",
        api_base_url=f"http://127.0.0.1:{port}",
    )


CONTRACTS = [
    Contract(
        "twilio-sms",
        Channel.sms,
        _twilio(TwilioSmsAdapter),
        _twilio_serve,
        _http_count("/_admin/messages"),
        "+14155550100",
        "+15005550001",
    ),
    Contract(
        "twilio-whatsapp",
        Channel.whatsapp,
        _twilio(TwilioWhatsAppAdapter),
        _twilio_serve,
        _http_count("/_admin/messages"),
        "+14155550100",
        "+15005550004",
    ),
    Contract(
        "smtp",
        Channel.email,
        lambda port: SmtpEmailAdapter(host="127.0.0.1", port=port, starttls="never", from_address="hi@shop.test"),
        _smtp_serve,
        lambda inbox: len(inbox.messages),
        "ann@example.com",
        "nobody@example.com",
    ),
    Contract(
        "sendgrid",
        Channel.email,
        lambda port: SendGridEmailAdapter(
            api_key=DEFAULT_API_KEY, from_address="hi@shop.test", api_base_url=f"http://127.0.0.1:{port}"
        ),
        lambda port: serve_in_thread(create_fake_sendgrid_app(), port=port),
        _http_count("/_admin/messages", "messages"),
        "ann@example.com",
        "not-an-address",
    ),
]


def message(contract: Contract, to: str, key: str = "k1") -> OutboundMessage:
    return OutboundMessage(send_key=key, channel=contract.channel, to=to, body="Your order shipped", subject="Shipped")


@pytest.fixture(params=CONTRACTS, ids=lambda c: c.name)
def contract(request) -> Contract:
    return request.param


async def test_adapter_declares_itself(contract):
    adapter = contract.make_adapter(free_port())
    assert adapter.channel == contract.channel and adapter.provider
    assert adapter.max_body_length is None or adapter.max_body_length > 0
    await adapter.aclose()


async def test_success_permanent_and_transient_then_success(contract):
    port = free_port()
    adapter = contract.make_adapter(port)
    try:
        down = await adapter.send(message(contract, contract.good_to))
        assert down.outcome == Outcome.transient_failure, down
        with contract.serve(port) as provider:
            accepted = await adapter.send(message(contract, contract.good_to))
            assert accepted.outcome == Outcome.accepted and accepted.provider_message_id, accepted
            refused = await adapter.send(message(contract, contract.permanent_to, "k2"))
            assert refused.outcome == Outcome.permanent_failure and refused.error_code, refused
            assert contract.arrived(provider) == 1
    finally:
        await adapter.aclose()


async def test_dispatcher_honours_the_send_rate(contract, tmp_path):
    port = free_port()
    adapter = contract.make_adapter(port)
    others = {c: a for c, a in ((a.channel, a) for a in local_registry()) if c != contract.channel}
    settings = make_settings(
        f"sqlite:///{tmp_path / 'contract.db'}", **{f"{contract.channel.value}_rate_per_second": 3}
    )
    runtime = await build_runtime(
        settings, channels=ChannelRegistry({contract.channel: adapter, **others}), clock=SimulatedClock(START)
    )
    try:
        async with runtime.sessions() as session, session.begin():
            session.add(Customer(id=1, user_id="contract", traits={}, created_at=START, updated_at=START))
            await session.flush()
            for i in range(7):
                session.add(
                    Message(
                        send_key=f"rate-{i}",
                        customer_id=1,
                        channel=contract.channel.value,
                        to_address=contract.good_to,
                        body="hello",
                        subject="hi",
                        status="queued",
                        created_at=START,
                        updated_at=START,
                        next_attempt_at=START,
                    )
                )
        with contract.serve(port) as provider:
            assert await dispatch_channel(runtime, contract.channel, limit=100) == 3
            assert contract.arrived(provider) == 3
        async with runtime.sessions() as session:
            statuses = sorted(m.status for m in (await session.exec(select(Message))).all())
        assert statuses == ["queued"] * 4 + ["sent"] * 3
    finally:
        await runtime.aclose()
