"""The one source of time for the engine.

Everything that asks "what time is it" asks a Clock, so tests, demos and simulations can
move time forward instead of sleeping. Times are timezone-aware UTC.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Annotated

from pydantic import AfterValidator


def utc(value: datetime) -> datetime:
    """Aware UTC datetime; naive values (as SQLite returns them) are taken to be UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


class Clock:
    simulated = False

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class SimulatedClock(Clock):
    """A clock that stands still until told to advance."""

    simulated = True

    def __init__(self, start: datetime | None = None) -> None:
        self._now = utc(start) if start else datetime.now(timezone.utc)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("time only moves forward")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime) -> datetime:
        moment = utc(moment)
        with self._lock:
            if moment < self._now:
                raise ValueError("time only moves forward")
            self._now = moment
            return self._now


# For answers: SQLite hands back naive datetimes, and the API always speaks explicit UTC.
UtcDatetime = Annotated[datetime, AfterValidator(utc)]
