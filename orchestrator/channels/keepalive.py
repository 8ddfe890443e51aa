"""Pooled HTTP connections that are never reused after the server has closed them.

A server closes an idle keep-alive connection on its own schedule (uvicorn after 5 s, load
balancers after 60 s). aiohttp notices only when its event loop next reads the socket; a
loop busy with a batch of sends may not have, so it writes the next request into a
connection whose close is already sitting in the kernel. That request fails after it was
written (`ClientOSError` ECONNRESET on a near server, `ServerDisconnectedError` on a far
one), which is also how a server that read the request and died looks: it stays `unknown`.

Before a pooled connection is handed out, the kernel is asked whether anything arrived on
it while it sat idle. An idle HTTP/1.1 connection has nothing to say: readable means the
server's FIN or RST (or stray bytes we must not take for our answer), so the connection is
closed and another one taken, before a byte of the request is written. That check is the
proof that nothing was sent on it; a close that arrives *while* the request is written
remains indistinguishable and is left to the reconciler (docs/send-safety.md).
"""

from __future__ import annotations

import select
from typing import Any

import aiohttp

# Idle pooled connections are closed after this many seconds: sooner than servers close
# theirs, which keeps the race above rare even without the check.
KEEPALIVE_SECONDS = 4.0


def closed_by_peer(protocol: Any) -> bool:
    """Whether the idle connection has anything to read: the server's close, or bytes that
    are no answer to any request of ours. Either way it must not carry a request."""
    transport = getattr(protocol, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return False  # nothing to ask: what aiohttp already knows stands
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


class LiveConnectionsConnector(aiohttp.TCPConnector):
    """aiohttp's connector, skipping pooled connections the server has already closed.

    Overrides `_get`, the connector's one place that takes a connection from the pool
    (aiohttp 3.x); `tests/channels/test_twilio.py` pins the behaviour against the real
    aiohttp."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**({"keepalive_timeout": KEEPALIVE_SECONDS} | kwargs))
        self.discarded = 0  # pooled connections found closed by the server before use

    async def _get(self, key: Any, traces: list[Any]) -> Any:
        while (connection := await super()._get(key, traces)) is not None:
            if not closed_by_peer(connection.protocol):
                return connection
            self.discarded += 1
            connection.close()  # not back into the pool: the protocol is closed with it
        return None
