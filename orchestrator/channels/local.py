"""Built-in adapters that only record what they were asked to send.

They keep the service useful with no provider at all and make every rendered message
visible to tests; the real adapters (Twilio, SMTP, SendGrid) implement the same interface.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from orchestrator.channels.base import Channel, ChannelAdapter, OutboundMessage, SendResult


class LocalAdapter(ChannelAdapter):
    provider: ClassVar[str] = "local"

    def __init__(self) -> None:
        self.outbox: list[OutboundMessage] = []

    async def send(self, message: OutboundMessage) -> SendResult:
        self.outbox.append(message)
        return SendResult.accepted(f"local-{uuid.uuid4().hex}", provider_status="recorded")


class LocalEmailAdapter(LocalAdapter):
    channel = Channel.email


class LocalSmsAdapter(LocalAdapter):
    channel = Channel.sms
    max_body_length = 1600


class LocalWhatsAppAdapter(LocalAdapter):
    channel = Channel.whatsapp
    max_body_length = 4096
