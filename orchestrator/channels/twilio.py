"""Twilio SMS and WhatsApp adapters, on the official `twilio` SDK's async path.

The real SDK does the real HTTP: `Client` with an `AsyncTwilioHttpClient` (aiohttp) and
`messages.create_async`. Pointing it at the local fake uses the way Twilio's support and the
SDK maintainers recommend for mock servers: a custom HTTP client that rewrites the
`https://….twilio.com` origin of each request (twilio/twilio-python#521). It rewrites after
the SDK has applied edge and region, so nothing else in the SDK needs to know.

Every provider outcome becomes a `SendResult`; `send` raises only for our own bugs. What
became of a send cut off mid-request is asked of Twilio afterwards (`twilio_lookup`).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from orchestrator.channels.base import Channel, ChannelAdapter, Found, Lookup, OutboundMessage, SendResult
from orchestrator.channels.keepalive import LiveConnectionsConnector
from orchestrator.channels.twilio_lookup import fetch_message, find_message
from orchestrator.vocabulary import whatsapp_address

SEND_KEY_PARAMETER = "sk"  # the send key in the StatusCallback URL's query
TWILIO_ORIGIN = re.compile(r"^https://[A-Za-z0-9.-]+\.twilio\.com")

# Twilio error codes whose meaning does not depend on the HTTP status they arrive with.
# Everything else is classified by status: 429 and 5xx are retried, other 4xx are not.
PERMANENT_ERROR_CODES = frozenset(
    {
        21211,  # invalid 'To' number
        21408,  # no permission to send to that region
        21610,  # recipient replied STOP
        21612,  # 'To' not reachable from this sender
        21614,  # 'To' is not a mobile number
        63016,  # WhatsApp: outside the 24-hour window, only a template may go
    }
)
TRANSIENT_ERROR_CODES = frozenset(
    {
        20429,  # too many requests
        21611,  # the sender's queue is full; it drains, so a later attempt goes through
    }
)


class RedirectableAsyncHttpClient(AsyncTwilioHttpClient):
    """The SDK's aiohttp client, with three changes.

    - `api_base_url` replaces the Twilio origin, so the SDK can talk to the local fake
      (`http://127.0.0.1:8025`, or a prefix such as `http://host/_fake/twilio`).
    - The client's timeout is applied to every request. The SDK passes `timeout=None`
      through to aiohttp, which means "no timeout at all" there: a stalled connection would
      hang a send forever.
    - Basic auth travels as an Authorization header: aiohttp deprecates its `auth=`
      parameter (removed in aiohttp 4), which the SDK still uses.
    - Idle pooled connections are dropped after `KEEPALIVE_SECONDS` (aiohttp keeps them
      15 s, longer than many servers do), and one the server has closed meanwhile is never
      written to (`LiveConnectionsConnector`).
    """

    def __init__(self, api_base_url: str | None = None, timeout_seconds: float = 10.0) -> None:
        super().__init__(pool_connections=False, timeout=timeout_seconds)
        self.session = aiohttp.ClientSession(connector=LiveConnectionsConnector())
        self.api_base_url = api_base_url.rstrip("/") if api_base_url else None

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if self.api_base_url is not None:
            url = TWILIO_ORIGIN.sub(lambda _: self.api_base_url, url, count=1)
        if auth is not None:
            credentials = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers = {**(headers or {}), "Authorization": f"Basic {credentials}"}
        return await super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=None,
            timeout=timeout if timeout is not None else self.timeout,
            allow_redirects=allow_redirects,
        )


def _describe(error: BaseException) -> str:
    detail = str(error)
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


def never_sent(error: BaseException) -> bool:
    """Whether a transport error proves Twilio never received the request: no connection
    was made (refused, DNS failure, TLS handshake failure, connect timeout: aiohttp's
    `ClientConnectorError` family and `ConnectionTimeoutError`).

    An error on a pooled keep-alive connection is not among them, whatever it is
    (`ServerDisconnectedError`, `ClientOSError` ECONNRESET or EPIPE): once a byte of the
    request was written, the server (or a proxy in front of it) may have read it and acted
    before the connection died. A pooled connection the server had already closed is
    never written to (`LiveConnectionsConnector`); the rest stay `unknown` until the
    reconciler has asked Twilio (engine/reconcile.py).
    """
    return isinstance(error, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))


def status_callback_with_key(url: str, send_key: str) -> str:
    """The StatusCallback URL with our send key in its query. Twilio calls the URL as
    given (query included) and signs it whole, so a callback names its message even when a
    crash kept us from storing the Twilio SID."""
    scheme, netloc, path, query, fragment = urlsplit(url)
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != SEND_KEY_PARAMETER]
    return urlunsplit((scheme, netloc, path, urlencode([*pairs, (SEND_KEY_PARAMETER, send_key)]), fragment))


def result_for_api_error(http_status: int, code: int | None, message: str) -> SendResult:
    error_code = str(code) if code is not None else None
    if code in TRANSIENT_ERROR_CODES:
        return SendResult.transient(error_code, message)
    if code in PERMANENT_ERROR_CODES:
        return SendResult.permanent(error_code, message)
    if http_status == 429 or http_status >= 500:
        return SendResult.transient(error_code, message)
    if 400 <= http_status < 500:
        return SendResult.permanent(error_code, message)
    # Anything else (a stray 3xx) says nothing about the message itself: try again later.
    return SendResult.transient(error_code, message)


def accepted_result(created: Any) -> SendResult:
    cost = currency = None
    if created.price:  # Twilio reports a charge as a negative amount, once the message is sent
        cost = abs(Decimal(created.price))
        currency = created.price_unit
    return SendResult.accepted(
        created.sid,
        provider_status=str(created.status) if created.status else None,
        cost=cost,
        cost_currency=currency,
    )


class TwilioAdapter(ChannelAdapter):
    """What SMS and WhatsApp share: the client, the request, the outcome mapping."""

    provider = "twilio"
    max_body_length = 1600  # Twilio's limit for Body, after which it answers 21617
    # The SDK's aiohttp session holds at most 100 connections (aiohttp's default), so a
    # 101st send would wait inside the client, not at Twilio. More per worker also buys
    # nothing against an account's REST concurrency limit (429 / 20429, retried).
    max_concurrent_sends = 100
    can_look_up_sends = True

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        status_callback_url: str | None = None,
        api_base_url: str | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        if not from_number and not messaging_service_sid:
            raise ValueError("a Twilio adapter needs from_number or messaging_service_sid")
        self.account_sid = account_sid
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback_url = status_callback_url
        self.api_base_url = api_base_url
        self._auth_token = auth_token
        self._timeout_seconds = timeout_seconds
        self._client: Client | None = None

    def _twilio(self) -> Client:
        # Built on first use, not in __init__: the aiohttp session behind it must be created
        # inside the running event loop. One client per adapter, so connections are reused.
        if self._client is None:
            http_client = RedirectableAsyncHttpClient(self.api_base_url, self._timeout_seconds)
            self._client = Client(self.account_sid, self._auth_token, http_client=http_client)
        return self._client

    async def send(self, message: OutboundMessage) -> SendResult:
        try:
            created = await self._twilio().messages.create_async(**self.create_params(message))
        except TwilioRestException as error:
            return result_for_api_error(error.status, error.code, error.msg)
        except TwilioServiceException as error:
            return result_for_api_error(error.status, error.code, error.detail or error.title)
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            if never_sent(error):  # Twilio cannot have the message, so a retry is safe
                return SendResult.transient(None, _describe(error))
            # The request went out and the answer did not come back: Twilio may have accepted
            # it, and its API takes no idempotency key. The reconciler asks Twilio before
            # anything is sent again (see engine/reconcile.py).
            return SendResult.unknown(None, _describe(error))
        return accepted_result(created)

    async def find_send(self, message: OutboundMessage, attempted_at: datetime) -> Lookup:
        content_template = "content_sid" in self.content_params(message)
        return await find_message(
            self._twilio(),
            to=self.address(message.to),
            from_=self.address(self.from_number) if self.from_number else None,
            body=None if content_template else message.body,
            attempted_at=attempted_at,
        )

    async def fetch_status(self, provider_message_id: str) -> Lookup:
        return await fetch_message(self._twilio(), provider_message_id)

    async def fetch_price(self, sid: str) -> tuple[Decimal, str] | None:
        """Twilio prices a message only after sending it, so the price is read back later
        (when its status callback says it left). None when not priced yet or unreachable."""
        fetched = await self.fetch_status(sid)
        if fetched.outcome != Found.found or fetched.records[0].cost is None:
            return None
        record = fetched.records[0]
        return record.cost, record.cost_currency

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.http_client.close()
            self._client = None

    def create_params(self, message: OutboundMessage) -> dict[str, Any]:
        """Keyword arguments for `messages.create_async`."""
        params: dict[str, Any] = {"to": self.address(message.to)}
        if self.from_number:
            params["from_"] = self.address(self.from_number)
        if self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
        status_callback = message.status_callback_url or self.status_callback_url
        if status_callback:
            params["status_callback"] = status_callback_with_key(status_callback, message.send_key)
        params.update(self.content_params(message))
        return params

    def address(self, number: str) -> str:
        return number

    def content_params(self, message: OutboundMessage) -> dict[str, Any]:
        return {"body": message.body}


class TwilioSmsAdapter(TwilioAdapter):
    channel = Channel.sms
    # A US long code sends one segment per second; short codes and toll-free go faster,
    # so deployments with those raise it.
    default_rate_per_second = 1.0


class TwilioWhatsAppAdapter(TwilioAdapter):
    channel = Channel.whatsapp
    default_rate_per_second = 80.0  # Twilio's default throughput per WhatsApp sender

    def address(self, number: str) -> str:
        return whatsapp_address(number)

    def content_params(self, message: OutboundMessage) -> dict[str, Any]:
        """A Content API template (`content_sid`) when the template declares one.

        Outside WhatsApp's 24-hour customer-service window only approved templates may be
        sent (Twilio answers 63016 to a free-form Body), so template sends carry no Body.
        """
        content_sid = message.template_metadata.get("content_sid")
        if not content_sid:
            return {"body": message.body}
        params: dict[str, Any] = {"content_sid": content_sid}
        declared = message.template_metadata.get("content_variables")
        source = declared if isinstance(declared, Mapping) else message.variables
        variables = content_variables(source)
        if variables:
            params["content_variables"] = json.dumps(variables)
        return params


def content_variables(values: Mapping[str, Any]) -> dict[str, str]:
    """The flat string map Twilio's Content API takes.

    Nested values (say a whole customer record among the render variables) and None have
    no place in it: Twilio rejects null values (21656) and a template placeholder is a
    string, so they are left out rather than sent as Python reprs.
    """
    return {str(key): str(value) for key, value in values.items() if isinstance(value, (str, int, float, Decimal))}
