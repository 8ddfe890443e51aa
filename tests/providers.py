"""Real provider stand-ins for tests: the fake Twilio over HTTP and a real SMTP server."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

import httpx
from aiosmtpd.controller import Controller

from orchestrator.fakes.server import free_port, serve_in_thread
from orchestrator.fakes.twilio import FakeTwilioSettings, create_fake_twilio_app


@dataclass
class SmtpInbox:
    """Everything a real aiosmtpd server accepted."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 queued"


@contextmanager
def smtp_server() -> Iterator[tuple[SmtpInbox, int]]:
    inbox = SmtpInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


class FakeTwilio:
    def __init__(self, url: str, auth_token: str) -> None:
        self.url = url
        self.auth_token = auth_token  # give the service the same: `fake_twilio_auth_token`

    def witnessed(self) -> list[dict]:
        return httpx.get(f"{self.url}/_admin/messages").json()

    def clear(self) -> None:
        httpx.delete(f"{self.url}/_admin/messages")

    def fail_next(self, count: int, status: int = 503) -> None:
        httpx.post(f"{self.url}/_admin/fail-next", json={"count": count, "status": status})


@contextmanager
def fake_twilio(**settings) -> Iterator[FakeTwilio]:
    settings.setdefault("auth_token", secrets.token_hex(16))
    app = create_fake_twilio_app(FakeTwilioSettings(status_latency_seconds=0.0, **settings))
    with serve_in_thread(app) as url:
        yield FakeTwilio(url, settings["auth_token"])
