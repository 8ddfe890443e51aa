"""E-mail through SendGrid's v3 Mail Send API (`POST /v3/mail/send`).

One `httpx.AsyncClient` is kept for the adapter's life, so sends reuse pooled keep-alive
connections instead of paying a TLS handshake each. The send key travels in `custom_args`,
which SendGrid copies onto every event webhook call, so delivery events find their message
even before (or without) the `X-Message-Id` being stored.

Outcomes: 2xx accepted; 429 transient, retried after SendGrid's rate-limit reset; 5xx,
connection errors and connect timeouts transient; a read timeout or a connection lost after
the request left is unknown, never retried (SendGrid may have queued the message); any other
4xx permanent, carrying the status code and SendGrid's first error message.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx

from orchestrator.channels.base import (
    Channel,
    ChannelAdapter,
    OutboundMessage,
    Outcome,
    SendResult,
)
from orchestrator.clock import Clock

SENDGRID_API_BASE_URL = "https://api.sendgrid.com"
MAIL_SEND_PATH = "/v3/mail/send"


class SendGridEmailAdapter(ChannelAdapter):
    channel: ClassVar[Channel] = Channel.email
    provider: ClassVar[str] = "sendgrid"

    def __init__(
        self,
        *,
        api_key: str,
        from_address: str,
        from_name: str | None = None,
        api_base_url: str = SENDGRID_API_BASE_URL,
        timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        """`api_base_url` may carry a path prefix (e.g. a fake mounted at `/sendgrid`);
        `clock` only turns a rate-limit reset time into a delay."""
        self.from_address = from_address
        self.from_name = from_name
        self._clock = clock or Clock()
        self._client = httpx.AsyncClient(
            base_url=api_base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    def build_payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The Mail Send request body for one message to one recipient."""
        sender = {"email": self.from_address}
        if self.from_name:
            sender["name"] = self.from_name
        # SendGrid rejects empty content blocks, and text/plain must come before text/html.
        content = [
            {"type": content_type, "value": value}
            for content_type, value in (("text/plain", message.body), ("text/html", message.html))
            if value
        ]
        payload: dict[str, Any] = {
            "personalizations": [{"to": [{"email": message.to}]}],
            "from": sender,
            "subject": message.subject,
            "content": content,
            "custom_args": {"send_key": message.send_key},
        }
        if message.marketing and message.unsubscribe_url:
            # RFC 8058 one-click unsubscribe, which Gmail and Yahoo require of bulk senders.
            payload["headers"] = {
                "List-Unsubscribe": f"<{message.unsubscribe_url}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        return payload

    async def send(self, message: OutboundMessage) -> SendResult:
        try:
            response = await self._client.post(MAIL_SEND_PATH, json=self.build_payload(message))
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return SendResult.transient("connection_error", f"{type(exc).__name__}: {exc}")
        except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            # Past the connect phase SendGrid may have queued the message: never retried.
            return SendResult.unknown("timeout", f"{type(exc).__name__}: {exc}")
        except httpx.TransportError as exc:
            return SendResult.transient("connection_error", f"{type(exc).__name__}: {exc}")

        if response.is_success:
            # 202 queued; 200 is sandbox mode, valid but never sent, and has no id.
            return SendResult(
                Outcome.accepted,
                provider_message_id=response.headers.get("X-Message-Id"),
                provider_status="queued" if response.status_code == 202 else "sandbox",
            )
        status, reason = response.status_code, _first_error_message(response)
        if status == 429:
            return SendResult.transient("429", reason, retry_after=self._retry_after(response))
        if status >= 500:
            return SendResult.transient(str(status), reason)
        return SendResult.permanent(str(status), reason)

    async def aclose(self) -> None:
        await self._client.aclose()

    def _retry_after(self, response: httpx.Response) -> float | None:
        """Seconds to wait: `Retry-After` when present (proxies add it), otherwise
        SendGrid's own `X-RateLimit-Reset`, a Unix timestamp."""
        retry_after = response.headers.get("Retry-After")
        if retry_after:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                pass
            try:
                retry_at = parsedate_to_datetime(retry_after)
                return max(0.0, (retry_at - self._clock.now()).total_seconds())
            except (TypeError, ValueError):
                pass
        reset_at = response.headers.get("X-RateLimit-Reset")
        if reset_at:
            try:
                return max(0.0, float(reset_at) - self._clock.now().timestamp())
            except ValueError:
                pass
        return None


def _first_error_message(response: httpx.Response) -> str:
    """SendGrid's first `errors[].message`, or the bare HTTP reason when the body is not
    SendGrid's (a proxy's HTML error page, say)."""
    try:
        return str(response.json()["errors"][0]["message"])
    except (ValueError, KeyError, IndexError, TypeError):
        return f"HTTP {response.status_code} {response.reason_phrase}".strip()
