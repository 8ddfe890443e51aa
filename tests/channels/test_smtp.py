"""SmtpEmailAdapter against a real aiosmtpd server on a loopback port."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from orchestrator.channels.base import Channel, OutboundMessage, Outcome
from orchestrator.channels.smtp import SmtpEmailAdapter
from orchestrator.clock import SimulatedClock
from orchestrator.fakes.server import free_port

# Recipients that make the recording server misbehave, as a real mailbox provider would.
UNKNOWN_MAILBOX = "nobody@refused.test"  # RCPT TO answered 550
GREYLISTED = "later@greylist.test"  # RCPT TO answered 451
SPAM_REJECTED = "spam@rejected.test"  # DATA answered 554

SMTP_USER, SMTP_PASSWORD = "relay-user", "relay-secret"


@dataclass
class Delivery:
    peer: tuple[str, int]  # the client's address: one connection, one peer port
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes = b""  # the bytes as they came over the wire


@dataclass
class RecordingHandler:
    deliveries: list[Delivery] = field(default_factory=list)
    answer_next_noop_with_421: bool = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == UNKNOWN_MAILBOX:
            return "550 5.1.1 mailbox unavailable"
        if address == GREYLISTED:
            return "451 4.7.1 greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if SPAM_REJECTED in envelope.rcpt_tos:
            return "554 5.7.1 message rejected as spam"
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.deliveries.append(
            Delivery(
                tuple(session.peer),
                envelope.mail_from,
                list(envelope.rcpt_tos),
                message,
                envelope.original_content or envelope.content,
            )
        )
        return "250 2.0.0 queued"

    async def handle_NOOP(self, server, session, envelope, arg):
        if self.answer_next_noop_with_421:
            self.answer_next_noop_with_421 = False
            return "421 4.4.2 idle too long, closing"
        return "250 OK"


def check_password(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (
        SMTP_USER.encode(),
        SMTP_PASSWORD.encode(),
    )
    # handled=False: aiosmtpd itself answers the failure with "535 5.7.8 Authentication
    # credentials invalid".
    return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    handler: RecordingHandler
    port: int

    def connections(self) -> int:
        return len({d.peer for d in self.deliveries})

    @property
    def deliveries(self) -> list[Delivery]:
        return self.handler.deliveries


def start_server(handler: RecordingHandler, port: int, **smtp_options) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=port, **smtp_options)
    controller.start()
    return controller


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    handler, port = RecordingHandler(), free_port()
    controller = start_server(handler, port)
    yield SmtpServer(handler, port)
    controller.stop()


def make_adapter(port: int, **options) -> SmtpEmailAdapter:
    settings = dict(
        host="127.0.0.1",
        port=port,
        from_address="hello@shop.example",
        from_name="Shop Crème",
        message_id_domain="mail.shop.example",
        timeout=2,
        local_hostname="orchestrator.test",  # skips a reverse DNS lookup per connection
    )
    settings.update(options)
    return SmtpEmailAdapter(**settings)


@pytest.fixture
async def adapter(smtp_server: SmtpServer):
    adapter = make_adapter(smtp_server.port)
    yield adapter
    await adapter.aclose()


def outbound(to: str = "ana@customer.example", **overrides) -> OutboundMessage:
    fields = dict(
        send_key="journey:welcome:step-1:ana",
        channel=Channel.email,
        to=to,
        subject="Bienvenue, Ana",
        body="Hello Ana, welcome aboard.",
        html="<p>Hello <b>Ana</b>, welcome aboard.</p>",
        marketing=True,
        unsubscribe_url="https://shop.example/u/abc123",
    )
    fields.update(overrides)
    return OutboundMessage(**fields)


async def test_delivers_multipart_message_with_our_message_id(adapter, smtp_server) -> None:
    result = await adapter.send(outbound())

    assert result.outcome is Outcome.accepted
    [delivery] = smtp_server.deliveries
    assert delivery.mail_from == "hello@shop.example"
    assert delivery.rcpt_tos == ["ana@customer.example"]
    message = delivery.message
    assert message["From"].addresses[0].display_name == "Shop Crème"
    assert message["From"].addresses[0].addr_spec == "hello@shop.example"
    assert message["To"] == "ana@customer.example"
    assert message["Subject"] == "Bienvenue, Ana"
    assert message["Date"].datetime is not None
    assert message["Message-ID"] == result.provider_message_id
    assert result.provider_message_id.endswith("@mail.shop.example>")
    assert message.get_content_type() == "multipart/alternative"
    assert message.get_body(("plain",)).get_content().strip() == "Hello Ana, welcome aboard."
    assert message.get_body(("html",)).get_content().strip() == ("<p>Hello <b>Ana</b>, welcome aboard.</p>")


async def test_marketing_mail_carries_one_click_unsubscribe(adapter, smtp_server) -> None:
    await adapter.send(outbound(marketing=True))

    message = smtp_server.deliveries[0].message
    assert message["List-Unsubscribe"] == "<https://shop.example/u/abc123>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"marketing": False}, id="transactional"),
        pytest.param({"unsubscribe_url": None}, id="marketing-without-url"),
    ],
)
async def test_no_unsubscribe_headers_without_marketing_url(adapter, smtp_server, overrides) -> None:
    await adapter.send(outbound(**overrides))

    message = smtp_server.deliveries[0].message
    assert "List-Unsubscribe" not in message
    assert "List-Unsubscribe-Post" not in message


async def test_text_only_message_is_single_part(adapter, smtp_server) -> None:
    await adapter.send(outbound(html=None, body="Ça marche ✓"))

    message = smtp_server.deliveries[0].message
    assert message.get_content_type() == "text/plain"
    assert message.get_content().strip() == "Ça marche ✓"


async def test_reuses_one_connection_across_sends(adapter, smtp_server) -> None:
    first = await adapter.send(outbound(to="ana@customer.example"))
    second = await adapter.send(outbound(to="bo@customer.example"))

    assert first.outcome is second.outcome is Outcome.accepted
    assert first.provider_message_id != second.provider_message_id
    assert len(smtp_server.deliveries) == 2
    assert smtp_server.connections() == 1


async def test_reconnects_when_server_closed_the_idle_session() -> None:
    handler, port = RecordingHandler(), free_port()
    # The server's idle timeout (300 s by default) cut short so the test sees it happen.
    controller = start_server(handler, port, timeout=0.1)
    adapter = make_adapter(port)
    try:
        assert (await adapter.send(outbound())).outcome is Outcome.accepted
        # A blocking sleep on purpose: our event loop never sees the server hang up, so the
        # session still looks connected and only the NOOP probe can find out it is dead.
        time.sleep(0.25)
        assert (await adapter.send(outbound())).outcome is Outcome.accepted
    finally:
        await adapter.aclose()
        controller.stop()
    assert len({d.peer for d in handler.deliveries}) == 2


async def test_reconnects_when_noop_probe_fails(adapter, smtp_server) -> None:
    await adapter.send(outbound())
    smtp_server.handler.answer_next_noop_with_421 = True

    result = await adapter.send(outbound())

    assert result.outcome is Outcome.accepted
    assert smtp_server.connections() == 2


async def test_reconnects_after_server_restart() -> None:
    handler, port = RecordingHandler(), free_port()
    controller = start_server(handler, port)
    adapter = make_adapter(port)
    try:
        await adapter.send(outbound())
        controller.stop()
        controller = start_server(handler, port)
        result = await adapter.send(outbound())
    finally:
        await adapter.aclose()
        controller.stop()
    assert result.outcome is Outcome.accepted
    assert len(handler.deliveries) == 2


@pytest.mark.parametrize(
    ("to", "outcome", "code"),
    [
        pytest.param(UNKNOWN_MAILBOX, Outcome.permanent_failure, "550", id="rcpt-550"),
        pytest.param(GREYLISTED, Outcome.transient_failure, "451", id="rcpt-451"),
        pytest.param(SPAM_REJECTED, Outcome.permanent_failure, "554", id="data-554"),
    ],
)
async def test_maps_smtp_replies(adapter, smtp_server, to, outcome, code) -> None:
    result = await adapter.send(outbound(to=to))

    assert result.outcome is outcome
    assert result.error_code == code
    assert result.error_message
    assert smtp_server.deliveries == []


async def test_session_survives_a_refused_recipient(adapter, smtp_server) -> None:
    await adapter.send(outbound(to=UNKNOWN_MAILBOX))
    result = await adapter.send(outbound())

    assert result.outcome is Outcome.accepted
    assert len(smtp_server.deliveries) == 1


async def test_header_injection_is_refused_before_sending(adapter, smtp_server) -> None:
    result = await adapter.send(outbound(to="ana@customer.example\r\nBcc: all@victims.example"))

    assert result.outcome is Outcome.permanent_failure
    assert result.error_code == "invalid_message"
    assert smtp_server.deliveries == []


async def test_server_down_is_transient() -> None:
    adapter = make_adapter(free_port())  # nothing listens there
    try:
        result = await adapter.send(outbound())
    finally:
        await adapter.aclose()

    assert result.outcome is Outcome.transient_failure
    assert result.error_code == "connection_error"


async def test_silent_server_times_out_as_transient() -> None:
    # Accepts the TCP connection (the kernel does, via the backlog) but never greets.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        adapter = make_adapter(silent.getsockname()[1], timeout=0.2)
        try:
            result = await adapter.send(outbound())
        finally:
            await adapter.aclose()

    assert result.outcome is Outcome.transient_failure
    assert result.error_code == "timeout"


@pytest.fixture
def auth_smtp_server() -> Iterator[SmtpServer]:
    handler, port = RecordingHandler(), free_port()
    # AUTH over plain TCP is acceptable on loopback only; real relays demand TLS first.
    controller = start_server(handler, port, authenticator=check_password, auth_require_tls=False)
    yield SmtpServer(handler, port)
    controller.stop()


@pytest.mark.parametrize(
    ("password", "outcome", "code"),
    [
        pytest.param(SMTP_PASSWORD, Outcome.accepted, None, id="good-password"),
        # A wrong password fails every message alike: an alert, not dead mail.
        pytest.param("wrong", Outcome.transient_failure, "535", id="bad-password"),
    ],
)
async def test_logs_in_when_credentials_are_given(auth_smtp_server, password, outcome, code) -> None:
    adapter = make_adapter(auth_smtp_server.port, username=SMTP_USER, password=password)
    try:
        result = await adapter.send(outbound())
    finally:
        await adapter.aclose()

    assert result.outcome is outcome
    assert result.error_code == code


@pytest.mark.parametrize(
    ("starttls", "use_tls", "flag"),
    [
        ("auto", False, None),  # aiosmtplib: upgrade if offered
        (True, False, True),
        ("always", False, True),
        (False, False, False),
        ("never", False, False),
        ("auto", True, False),  # implicit TLS: already encrypted, never STARTTLS on top
    ],
)
def test_starttls_choices(starttls, use_tls, flag) -> None:
    adapter = SmtpEmailAdapter(from_address="a@b.example", starttls=starttls, use_tls=use_tls)
    assert adapter.start_tls_flag is flag


def test_implicit_tls_and_required_starttls_exclude_each_other() -> None:
    with pytest.raises(ValueError):
        SmtpEmailAdapter(from_address="a@b.example", starttls="always", use_tls=True)


def test_date_header_comes_from_the_clock() -> None:
    moment = datetime(2025, 3, 1, 9, 30, tzinfo=timezone.utc)
    adapter = SmtpEmailAdapter(from_address="a@b.example", clock=SimulatedClock(moment))
    assert adapter.build_email(outbound())["Date"].datetime == moment


def test_message_id_domain_defaults_to_sender_domain() -> None:
    adapter = SmtpEmailAdapter(from_address="news@letters.shop.example")
    assert adapter.build_email(outbound())["Message-ID"].endswith("@letters.shop.example>")


async def test_long_unsubscribe_url_goes_out_unencoded_on_one_line(adapter, smtp_server) -> None:
    # A signed unsubscribe URL is longer than a folded header line; it used to be RFC 2047
    # encoded (`=?utf-8?q?=3Chttp…`), which mail clients do not take for a one-click header.
    url = "http://127.0.0.1:8000/unsubscribe/" + "eyJjIjoxMjM0NTYsInMiOiJlbWFpbCJ9." + "x" * 90
    await adapter.send(outbound(marketing=True, unsubscribe_url=url))

    raw = smtp_server.deliveries[0].raw
    assert f"\r\nList-Unsubscribe: <{url}>\r\n".encode() in raw
    assert b"List-Unsubscribe: =?" not in raw
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw
