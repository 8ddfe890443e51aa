"""Exponential backoff with equal jitter, so retries after an outage do not arrive in step.

Equal jitter, not full jitter: the delay is drawn from the upper half of the window
(`ceiling / 2 .. ceiling`), so a retry is never immediate, while full jitter (`0 .. ceiling`)
could retry a struggling provider at once."""

from __future__ import annotations

import random
from datetime import timedelta

BASE_SECONDS = 2.0
CAP_SECONDS = 600.0
MAX_ATTEMPTS = 8
# A send the provider proved it never got (engine/reconcile.py) is queued again without
# using an attempt: the budget is for the provider's refusals, not for our crashes. A
# message whose sends keep being cut off (one that kills its worker, say) still ends, after
# this many such requeues, as `failed` for a person.
MAX_REQUEUES = 5


def backoff_delay(attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> timedelta:
    """Delay before attempt number `attempt + 1`; a provider's Retry-After is a floor."""
    ceiling = min(CAP_SECONDS, BASE_SECONDS * 2 ** max(attempt - 1, 0))
    delay = (rng or random).uniform(ceiling / 2, ceiling)
    return timedelta(seconds=max(delay, retry_after or 0.0))
