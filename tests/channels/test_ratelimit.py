"""Send rates: one budget shared by every limiter on the same storage (Redis across processes)."""

from __future__ import annotations

import uuid

import pytest
import redis

from orchestrator.channels.base import Channel
from orchestrator.channels.ratelimit import SendRateLimiter, rate_item


def test_fractional_rates_become_whole_messages_per_longer_windows():
    assert (rate_item(0.5).amount, rate_item(0.5).multiples) == (1, 2)
    assert (rate_item(100).amount, rate_item(100).multiples) == (100, 1)


async def test_memory_limiter_counts_the_budget():
    limiter = SendRateLimiter({Channel.sms: 3, Channel.email: None})
    assert await limiter.available(Channel.sms) == 3 and await limiter.available(Channel.email) is None
    assert [await limiter.try_acquire(Channel.sms) for _ in range(4)] == [True, True, True, False]
    assert 0 < await limiter.seconds_until_available(Channel.sms) <= 1


async def test_two_workers_share_one_budget_through_redis():
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    namespace = f"test-{uuid.uuid4().hex}"  # a fresh budget, whatever ran before
    first = SendRateLimiter({Channel.sms: 5}, "redis://127.0.0.1:6379", namespace=namespace)
    second = SendRateLimiter({Channel.sms: 5}, "redis://127.0.0.1:6379", namespace=namespace)
    granted = [await limiter.try_acquire(Channel.sms) for limiter in (first, second) * 4]
    assert granted.count(True) == 5
    assert await second.available(Channel.sms) == 0
