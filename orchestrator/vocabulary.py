"""The words every part of orchestrator shares: channels, the two lifecycles, send keys.

Each is defined once here and imported everywhere else, so a new channel or status is one
edit, and the database, the engine, the webhooks and the tools cannot drift apart. The enums
are `StrEnum`s: their members are the very strings stored in the database, so they compare
equal to what a query returns and bind as plain text.
"""

from __future__ import annotations

import enum


class Channel(enum.StrEnum):
    email = "email"
    sms = "sms"
    whatsapp = "whatsapp"


CHANNELS: tuple[str, ...] = tuple(channel.value for channel in Channel)
# Channels that reach a phone: quiet hours apply, replies come back as inbound messages.
PHONE_CHANNELS = frozenset({Channel.sms, Channel.whatsapp})

# Twilio addresses WhatsApp senders and recipients as `whatsapp:+E164`; we store bare E.164.
WHATSAPP_PREFIX = "whatsapp:"


def whatsapp_address(number: str) -> str:
    """`+15551234567` → `whatsapp:+15551234567` (unchanged if already prefixed)."""
    return number if number.startswith(WHATSAPP_PREFIX) else WHATSAPP_PREFIX + number


def bare_number(address: str) -> str:
    """`whatsapp:+15551234567` → `+15551234567`; an SMS number is returned as it is."""
    return address.removeprefix(WHATSAPP_PREFIX)


def channel_of_address(address: str) -> Channel:
    """Which channel a Twilio `From`/`To` address belongs to."""
    return Channel.whatsapp if address.startswith(WHATSAPP_PREFIX) else Channel.sms


class MessageStatus(enum.StrEnum):
    """A message's lifecycle.

    queued → sending → sent → delivered → read, or undelivered / failed; `skipped` was never
    sent (consent, quiet hours past the window, a holdout); `unknown` is a send cut off after
    the request left, which nobody may resend blindly (see `orchestrator.engine.reconcile`).
    """

    queued = "queued"
    sending = "sending"
    sent = "sent"
    delivered = "delivered"
    read = "read"
    undelivered = "undelivered"
    failed = "failed"
    skipped = "skipped"
    unknown = "unknown"


class EnrollmentStatus(enum.StrEnum):
    """An enrollment's lifecycle: `active` until it completes its steps, exits by a rule
    (exit event, goal reached, unsubscribe), or fails."""

    active = "active"
    completed = "completed"
    exited = "exited"
    failed = "failed"


class SendKey:
    """Builds the deterministic `messages.send_key` of every kind of send.

    The key is unique in the database: building it the same way on every attempt is what
    makes a second send of the same thing impossible rather than unlikely.
    """

    @staticmethod
    def journey_step(enrollment_id: int, step_id: str) -> str:
        return f"{enrollment_id}:{step_id}"

    @staticmethod
    def broadcast(broadcast_id: str, customer_id: int) -> str:
        return f"broadcast:{broadcast_id}:{customer_id}"

    @staticmethod
    def fallback(original_key: str) -> str:
        return f"{original_key}:fallback"

    @staticmethod
    def agent_reply(conversation_id: int, unique: str) -> str:
        return f"agent:{conversation_id}:{unique}"

    @staticmethod
    def auto_reply(inbound_provider_id: str) -> str:
        return f"auto-reply:{inbound_provider_id}"


def segment_entered_event(segment_id: str) -> str:
    """The Track event a customer's entry into a segment becomes (journey trigger `segment_entered`)."""
    return f"Segment Entered: {segment_id}"


def segment_left_event(segment_id: str) -> str:
    """The Track event a customer's exit from a segment becomes (journey exit rule `segment_left`)."""
    return f"Segment Left: {segment_id}"
