"""The one interface every channel adapter implements.

An adapter describes itself through class attributes (what channel it serves, which provider
it talks to, its limits) so the registry, the rate limiter and the docs can read them without
instantiating anything. `send` is async and never raises for provider trouble: it maps every
outcome onto a `SendResult` so the dispatcher decides about retries in one place.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from orchestrator.vocabulary import Channel

__all__ = ["Channel", "ChannelAdapter", "OutboundMessage", "Outcome", "SendResult"]

# How reasons shown to marketers name the channels.
CHANNEL_NAMES = {Channel.sms: "SMS", Channel.whatsapp: "WhatsApp", Channel.email: "e-mail"}


class Outcome(str, enum.Enum):
    accepted = "accepted"  # the provider took the message; delivery status comes later
    permanent_failure = "permanent_failure"  # never retry (invalid number, opted out, ...)
    transient_failure = "transient_failure"  # retry with backoff (429, 5xx, refused connections)
    # The request left but no answer came (a read timeout, a connection dropped mid-request):
    # the provider may have accepted it. Retrying could send twice, so it is never retried.
    unknown = "unknown"


@dataclass(frozen=True)
class OutboundMessage:
    """A fully rendered message, ready for a provider."""

    send_key: str
    channel: Channel
    to: str  # e-mail address, or E.164 phone number (without the `whatsapp:` prefix)
    body: str
    subject: str | None = None
    html: str | None = None
    # Provider-specific extras declared by the template (e.g. WhatsApp `content_sid`).
    template_metadata: dict[str, Any] = field(default_factory=dict)
    # Values the template was rendered with; WhatsApp content templates need them.
    variables: dict[str, Any] = field(default_factory=dict)
    # Marketing messages carry unsubscribe headers; transactional ones do not.
    marketing: bool = True
    unsubscribe_url: str | None = None
    status_callback_url: str | None = None


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    provider_message_id: str | None = None
    provider_status: str | None = None  # e.g. Twilio's `queued`
    error_code: str | None = None
    error_message: str | None = None
    cost: Decimal | None = None
    cost_currency: str | None = None
    retry_after_seconds: float | None = None

    @classmethod
    def accepted(cls, provider_message_id: str, **kwargs: Any) -> SendResult:
        return cls(Outcome.accepted, provider_message_id=provider_message_id, **kwargs)

    @classmethod
    def permanent(cls, code: str | None, message: str) -> SendResult:
        return cls(Outcome.permanent_failure, error_code=code, error_message=message)

    @classmethod
    def unknown(cls, code: str | None, message: str) -> SendResult:
        return cls(Outcome.unknown, error_code=code, error_message=message)

    @classmethod
    def transient(cls, code: str | None, message: str, retry_after: float | None = None) -> SendResult:
        return cls(
            Outcome.transient_failure,
            error_code=code,
            error_message=message,
            retry_after_seconds=retry_after,
        )


class Found(str, enum.Enum):
    """What asking the provider about a send established."""

    found = "found"  # the provider has it: adopt its id and status, never send again
    not_found = "not_found"  # the provider has no such message (trust it only past its lag)
    unreachable = "unreachable"  # no answer, or no conclusive one: ask again later, never guess


@dataclass(frozen=True)
class ProviderRecord:
    """One message as the provider reports it."""

    provider_message_id: str
    status: str  # the provider's own word (`queued`, `delivered`, ...)
    created_at: datetime | None = None
    error_code: str | None = None
    cost: Decimal | None = None
    cost_currency: str | None = None


@dataclass(frozen=True)
class Lookup:
    """The provider's answer about one send: for `found`, the records that match it,
    oldest first (the reconciler adopts the first one no other message has claimed)."""

    outcome: Found
    records: tuple[ProviderRecord, ...] = ()
    detail: str | None = None

    @classmethod
    def unreachable(cls, detail: str) -> Lookup:
        return cls(Found.unreachable, detail=detail)


class ChannelAdapter:
    """Base class: subclasses set the metadata and implement `send`."""

    channel: ClassVar[Channel]
    provider: ClassVar[str]
    max_body_length: ClassVar[int | None] = None
    default_rate_per_second: ClassVar[float | None] = None
    # Sends one worker keeps in flight at once on this adapter. It is also how many messages
    # a worker claims per round, so claims stay what is really in flight: a worker killed
    # mid-round leaves at most this many messages `unknown` per channel.
    max_concurrent_sends: ClassVar[int] = 64
    # Whether the provider can be asked what became of a send (`find_send`, `fetch_status`).
    # Without it a send cut off mid-request stays `unknown` for a person to decide.
    can_look_up_sends: ClassVar[bool] = False

    def body_refusal(self, message: OutboundMessage) -> str | None:
        """Why this body may not go to the provider, or None. A body over the declared
        maximum would be refused by the provider at best, or split into hundreds of paid
        segments at worst. An approved WhatsApp template (`content_sid`) sends no body."""
        limit = self.max_body_length
        if limit is None or message.template_metadata.get("content_sid") or len(message.body) <= limit:
            return None
        return f"body is {len(message.body):,} characters, the {CHANNEL_NAMES[self.channel]} limit is {limit:,}"

    async def send(self, message: OutboundMessage) -> SendResult:
        raise NotImplementedError

    async def find_send(self, message: OutboundMessage, attempted_at: datetime) -> Lookup:
        """The provider's messages that could be this send, attempted (claimed) at
        `attempted_at`. Only adapters with `can_look_up_sends` implement it."""
        raise NotImplementedError

    async def fetch_status(self, provider_message_id: str) -> Lookup:
        """The provider's current record of one message it accepted."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections (SMTP sessions, HTTP clients)."""
