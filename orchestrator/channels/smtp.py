"""E-mail through any SMTP relay (a local Postfix, Amazon SES SMTP, Mailgun SMTP, ...).

One connected `aiosmtplib.SMTP` session is kept open and reused, because a TCP + TLS + AUTH
handshake per message costs more than the message. The session carries one transaction at a
time, so an `asyncio.Lock` serializes sends; run several adapters for parallel sessions.

Error mapping follows the SMTP reply code of the transaction (MAIL, RCPT, DATA): 5xx is
permanent, 4xx transient. A timeout or the server disconnecting in the middle of the transaction
is unknown, never retried: the relay may have taken the message. Trouble while connecting or
authenticating (timeouts included) says nothing about the message itself (a wrong password
fails every message alike), so it is transient and shows up as an alert, not as dead mail.
"""

from __future__ import annotations

import asyncio
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import ClassVar, Literal

import aiosmtplib

from orchestrator.channels.base import Channel, ChannelAdapter, OutboundMessage, SendResult
from orchestrator.clock import Clock

StartTls = Literal["auto", "always", "never"]

# aiosmtplib's own vocabulary for STARTTLS: None upgrades when the server offers it.
_START_TLS_FLAGS: dict[StartTls, bool | None] = {"auto": None, "always": True, "never": False}


class VerbatimHeader(str):
    """A header value that goes on the wire exactly as written.

    The email package folds a header longer than 78 characters, and a value with no space to
    fold at (a long URL) it RFC 2047-encodes instead (`=?utf-8?q?=3Chttps…`), which mail
    clients do not read as a one-click `List-Unsubscribe`. RFC 8058 wants the bare `<https://…>`;
    RFC 5322 allows lines up to 998 characters, far more than our URLs take."""

    name: str

    def __new__(cls, name: str, value: str) -> VerbatimHeader:
        if "\r" in value or "\n" in value or len(name) + len(value) + 2 > 998:
            raise ValueError(f"{name} cannot be sent as one line: {value!r}")
        header = super().__new__(cls, value)
        header.name = name
        return header

    def fold(self, *, policy) -> str:  # what the email generator asks a header object for
        return f"{self.name}: {self}{policy.linesep}"


class SmtpEmailAdapter(ChannelAdapter):
    channel: ClassVar[Channel] = Channel.email
    provider: ClassVar[str] = "smtp"

    def __init__(
        self,
        *,
        host: str = "localhost",
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        starttls: StartTls | bool = "auto",
        use_tls: bool = False,
        from_address: str,
        from_name: str | None = None,
        message_id_domain: str | None = None,
        timeout: float = 30.0,
        local_hostname: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        """Describe the relay; nothing connects until the first `send`.

        `starttls`: "auto" upgrades when the server offers STARTTLS (fine for a relay on
        localhost, but an attacker on the path can strip the offer); use "always" (or True)
        for any relay across a network. `use_tls` is implicit TLS from the first byte (port
        465) and excludes STARTTLS. `port` defaults to 465 with `use_tls`, 587 with
        "always", 25 otherwise. `message_id_domain` defaults to the sender's domain.
        """
        if isinstance(starttls, bool):
            starttls = "always" if starttls else "never"
        if starttls not in _START_TLS_FLAGS:
            raise ValueError(f"starttls must be 'auto', 'always' or 'never', not {starttls!r}")
        if use_tls and starttls == "always":
            raise ValueError("use_tls (implicit TLS) and starttls='always' exclude each other")
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        # Implicit TLS already encrypts the session; asking for STARTTLS on top is an error.
        self.start_tls_flag = False if use_tls else _START_TLS_FLAGS[starttls]
        self.use_tls = use_tls
        self.from_address = from_address
        self.from_name = from_name
        self.message_id_domain = message_id_domain or from_address.rpartition("@")[2]
        self.timeout = timeout
        self.local_hostname = local_hostname
        self._clock = clock or Clock()
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()

    def build_email(self, message: OutboundMessage) -> EmailMessage:
        """The MIME message as it goes on the wire (plain text, plus HTML as an alternative)."""
        email = EmailMessage()
        email["Subject"] = message.subject or ""
        email["From"] = Address(display_name=self.from_name or "", addr_spec=self.from_address)
        email["To"] = message.to
        email["Date"] = format_datetime(self._clock.now())
        email["Message-ID"] = make_msgid(domain=self.message_id_domain)
        if message.marketing and message.unsubscribe_url:
            # RFC 8058 one-click unsubscribe, which Gmail and Yahoo require of bulk senders.
            # The relay must DKIM-sign these headers for mailbox providers to honour them.
            email["List-Unsubscribe"] = VerbatimHeader("List-Unsubscribe", f"<{message.unsubscribe_url}>")
            email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        email.set_content(message.body)
        if message.html:
            email.add_alternative(message.html, subtype="html")
        return email

    async def send(self, message: OutboundMessage) -> SendResult:
        try:
            email = self.build_email(message)
        except ValueError as exc:  # e.g. a line break smuggled into the address or subject
            return SendResult.permanent("invalid_message", str(exc))
        # The Message-ID is ours, not the relay's: it is what bounces and replies quote back.
        message_id = str(email["Message-ID"])
        async with self._lock:
            try:
                client = await self._connected_client()
            except (aiosmtplib.SMTPException, OSError) as exc:
                return _connection_trouble(exc)
            try:
                await client.send_message(email, sender=self.from_address, recipients=[message.to])
            except aiosmtplib.SMTPRecipientsRefused as exc:
                refused = exc.recipients[0]
                return _result_for_reply(refused.code, refused.message)
            except aiosmtplib.SMTPResponseException as exc:
                if not client.is_connected:  # e.g. 421: the server closed the session
                    self._drop_client()
                return _result_for_reply(exc.code, exc.message)
            except aiosmtplib.SMTPNotSupported as exc:
                # e.g. an internationalized address and a relay without SMTPUTF8.
                return SendResult.permanent("not_supported", str(exc))
            except ValueError as exc:  # aiosmtplib refuses unparsable addresses up front
                return SendResult.permanent("invalid_address", str(exc))
            except (aiosmtplib.SMTPException, OSError) as exc:
                self._drop_client()
                # Lost in the middle of the mail transaction: the relay may have taken it.
                if isinstance(exc, (aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPServerDisconnected, TimeoutError)):
                    return SendResult.unknown("timeout", str(exc) or type(exc).__name__)
                return _connection_trouble(exc)
        return SendResult.accepted(message_id)

    async def aclose(self) -> None:
        async with self._lock:
            client, self._client = self._client, None
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()

    async def _connected_client(self) -> aiosmtplib.SMTP:
        """The open session, probed with NOOP; or a fresh one when the server dropped it.

        Servers close idle sessions (often after a few minutes). Probing before the
        transaction, rather than retrying after a failed one, keeps the retry safe: a session
        lost in the middle of DATA might have delivered the message, so that failure is
        reported instead of silently sending twice.
        """
        if self._client is not None and self._client.is_connected:
            try:
                await self._client.noop()
                return self._client
            except (aiosmtplib.SMTPException, OSError):
                pass
        self._drop_client()
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            start_tls=self.start_tls_flag,
            timeout=self.timeout,
            local_hostname=self.local_hostname,
        )
        try:
            await client.connect()
        except BaseException:
            client.close()  # a half-open session (e.g. refused at AUTH) must not leak
            raise
        self._client = client
        return client

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _result_for_reply(code: int, text: str) -> SendResult:
    """Map an SMTP reply of the mail transaction: 5xx permanent, anything else transient."""
    if 500 <= code < 600:
        return SendResult.permanent(str(code), text)
    return SendResult.transient(str(code), text)


def _connection_trouble(exc: Exception) -> SendResult:
    if isinstance(exc, (aiosmtplib.SMTPTimeoutError, TimeoutError)):
        return SendResult.transient("timeout", str(exc) or type(exc).__name__)
    # Replies while connecting or authenticating (421 busy, 535 bad credentials) keep their
    # code for the operator, but stay transient: the message is not what is wrong.
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return SendResult.transient(str(exc.code), exc.message)
    return SendResult.transient("connection_error", str(exc) or type(exc).__name__)
