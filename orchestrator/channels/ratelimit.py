"""Per-channel send rates (messages per second), shared across worker processes.

Built on the `limits` library: a moving window in memory for one process, or in Redis
(`redis://...`) so every worker on every machine draws from the same budget, which is what
a long code's 1 MPS or a short code's 100 MPS means.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from orchestrator.channels.base import Channel


def rate_item(per_second: float) -> RateLimitItem:
    """`limits` counts whole messages per whole seconds: 0.5/s becomes 1 per 2 s."""
    if per_second >= 1:
        return RateLimitItemPerSecond(int(per_second))
    return RateLimitItemPerSecond(1, math.ceil(1 / per_second))


def storage_for(uri: str) -> Storage:
    if uri.startswith(("redis://", "rediss://")):
        return RedisStorage(uri.replace("redis", "async+redis", 1), implementation="redispy")
    if uri.startswith("memory://"):
        return MemoryStorage()
    raise ValueError(f"unsupported rate-limit storage {uri!r}: use memory:// or redis://host:port")


class SendRateLimiter:
    def __init__(
        self, rates: dict[Channel, float | None], storage_uri: str = "memory://", namespace: str = "sends"
    ) -> None:
        self._items = {channel: rate_item(rate) for channel, rate in rates.items() if rate}
        self._limiter = MovingWindowRateLimiter(storage_for(storage_uri))
        self._namespace = namespace

    def limited(self, channel: Channel) -> bool:
        return channel in self._items

    async def available(self, channel: Channel) -> int | None:
        """How many may go now; None when the channel is unlimited."""
        item = self._items.get(channel)
        if item is None:
            return None
        stats = await self._limiter.get_window_stats(item, self._namespace, channel.value)
        return max(stats.remaining, 0)

    async def try_acquire(self, channel: Channel) -> bool:
        item = self._items.get(channel)
        return True if item is None else await self._limiter.hit(item, self._namespace, channel.value)

    async def seconds_until_available(self, channel: Channel) -> float:
        item = self._items.get(channel)
        if item is None:
            return 0.0
        stats = await self._limiter.get_window_stats(item, self._namespace, channel.value)
        return max(stats.reset_time - time.time(), 0.0)
