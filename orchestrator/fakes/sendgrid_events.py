"""The fake SendGrid's Event Webhook: signed like SendGrid's Signed Event Webhook.

SendGrid signs `timestamp + raw body` with ECDSA P-256 / SHA-256 and sends the DER signature
base64-encoded in `X-Twilio-Email-Event-Webhook-Signature`, the timestamp (Unix seconds) in
`X-Twilio-Email-Event-Webhook-Timestamp`. The fake does the same with a private key it is
given (the service generates it and keeps it in its database), so our webhook verifies the
fake's events exactly as it verifies SendGrid's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx

from orchestrator.clock import Clock

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


def sign_events(private_key_pem: str, timestamp: str, body: bytes) -> str:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the event signing key must be an ECDSA private key")
    return base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


def signed_headers(private_key_pem: str, body: bytes, unix_time: int) -> dict[str, str]:
    timestamp = str(unix_time)
    return {
        "content-type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign_events(private_key_pem, timestamp, body),
    }


@dataclass
class EventWebhook:
    """Where the fake posts events and the key it signs them with; set after start by a
    service that mounts the fake (the key comes from its database). Off while either is None."""

    url: str | None = None
    signing_key: str | None = None
    clock: Clock = field(default_factory=Clock)
    # SendGrid batches its events and posts them seconds after the send; posting at once would
    # race the sender's own commit of the send (an event for a message still `sending`).
    latency_seconds: float = 1.0
    tasks: set[asyncio.Task] = field(default_factory=set)  # strong references to running posts

    @property
    def enabled(self) -> bool:
        return bool(self.url and self.signing_key)

    def report_delivery(self, message_id: str, payload: dict[str, Any]) -> None:
        """`processed` then `delivered` for each recipient, posted in the background as SendGrid does."""
        if not self.enabled:
            return
        task = asyncio.create_task(self._post(delivery_events(message_id, payload, self.clock)))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _post(self, events: list[dict[str, Any]]) -> None:
        await asyncio.sleep(self.latency_seconds)
        body = json.dumps(events).encode()
        headers = signed_headers(self.signing_key, body, int(self.clock.now().timestamp()))
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.post(self.url, content=body, headers=headers)
        except Exception as error:  # noqa: BLE001 - a broken receiver must not stop the fake
            log.warning("event webhook %s failed: %r", self.url, error)
            return
        if response.status_code >= 400:
            log.warning("event webhook %s answered %s", self.url, response.status_code)


def delivery_events(message_id: str, payload: dict[str, Any], clock: Clock) -> list[dict[str, Any]]:
    now = int(clock.now().timestamp())
    events = []
    for index, personalization in enumerate(payload.get("personalizations") or []):
        custom_args = {**(payload.get("custom_args") or {}), **(personalization.get("custom_args") or {})}
        for recipient in personalization.get("to") or []:
            for kind in ("processed", "delivered"):
                events.append(
                    {
                        **custom_args,
                        "email": recipient["email"],
                        "event": kind,
                        "timestamp": now,
                        "sg_event_id": secrets.token_urlsafe(16),
                        "sg_message_id": f"{message_id}.filterdrecv-fake-{index}.0",
                    }
                )
    return events
