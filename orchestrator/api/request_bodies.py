"""Request bodies at the edge: size limits and gzip, before any route sees a byte.

A pure ASGI middleware, outermost, so the ingestion middleware and every FastAPI route get
a body that is already within its limit and already inflated:

- each path has a limit (`limit_for`): one Segment call, a batch, any other API body, a
  provider webhook. The body is counted while it is read, so a 10 MB body costs at most
  the limit in memory before its 413; a `Content-Length` beyond the limit is refused
  before reading at all;
- `Content-Encoding: gzip` (which Segment-compatible SDKs send) is inflated here, in
  bounded steps, and the limit applies to the inflated size: a small gzip bomb is a 413,
  never a gigabyte in memory. Other encodings get a 415, a corrupt gzip stream a 400.

The inner app sees the body without `Content-Encoding` and with its real `Content-Length`.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.api.browser_origins import refusal_cors_headers
from orchestrator.config import Settings

# One Segment call per request; each item of a batch is held to the same limit (api/events.py).
# With analytics.js's own paths for them (api/browser_origins.py, BROWSER_PATHS).
SINGLE_CALL_PATHS = frozenset(
    {"/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias"}
    | {"/v1/t", "/v1/i", "/v1/p", "/v1/s", "/v1/g", "/v1/a"}
)
METHODS_WITH_BODIES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Routes that stream their own body, under their own limit: a customer import is a file of
# any size, spooled to disk as it arrives (api/customer_data.py, `max_import_bytes`).
STREAMED_PATHS = frozenset({"/v1/customers/import"})


class BodyRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def limit_for(settings: Settings, path: str) -> int:
    if path in SINGLE_CALL_PATHS:
        return settings.max_call_bytes
    if path in ("/v1/batch", "/v1/b"):
        return settings.max_batch_bytes
    if path.startswith("/v1/"):
        return settings.max_body_bytes
    return settings.max_request_bytes  # provider webhooks: their batches are the provider's to size


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def read_limited_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body, inflated if gzip, or `BodyRefused` as soon as it is known to exceed `limit`."""
    encoding = (_header(scope, b"content-encoding") or "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        raise BodyRefused(415, f"Content-Encoding '{encoding}' is not supported; send gzip or no encoding")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding != "identity" else None
    declared = _header(scope, b"content-length")
    if inflater is None and declared and declared.isdigit() and int(declared) > limit:
        raise BodyRefused(413, _too_large(limit))
    chunks: list[bytes] = []
    size = received = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError("client disconnected while sending the body")
        data, more = message.get("body", b""), message.get("more_body", False)
        received += len(data)
        if inflater is not None:
            try:
                # At most one byte past the limit per step: the rest waits in unconsumed_tail.
                data = inflater.decompress(data, limit - size + 1)
            except zlib.error:
                raise BodyRefused(400, "body: not a valid gzip stream") from None
        size += len(data)
        if size > limit:
            raise BodyRefused(413, _too_large(limit))
        chunks.append(data)
    if inflater is not None and received and not inflater.eof:
        raise BodyRefused(400, "body: the gzip stream ends early")
    return b"".join(chunks)


def _too_large(limit: int) -> str:
    return f"body too large: this route accepts at most {limit} bytes (after gzip inflation); see docs/api.md, Limits"


class BodyLimits:
    def __init__(self, app: ASGIApp, settings: Settings, limit: Callable[[Settings, str], int] = limit_for) -> None:
        self.app, self.settings, self.limit = app, settings, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in METHODS_WITH_BODIES or scope["path"] in STREAMED_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            body = await read_limited_body(scope, receive, self.limit(self.settings, scope["path"]))
        except ConnectionAbortedError:  # nothing was read, nothing stored: nobody to answer
            return
        except BodyRefused as refused:
            await _answer(scope, send, refused)
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-encoding", b"content-length")]
        headers.append((b"content-length", str(len(body)).encode()))
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the client's disconnect, as the app expects

        await self.app({**scope, "headers": headers}, replay, send)


async def _answer(scope: Scope, send: Send, refused: BodyRefused) -> None:
    # The connection is closed after the answer: the rest of an oversized body is never read.
    # A listed site's page reads the refusal like any other answer (browser_origins.py).
    content = json.dumps({"detail": refused.detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refused.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
                (b"connection", b"close"),
                *refusal_cors_headers(scope),
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})
