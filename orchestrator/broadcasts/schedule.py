"""When a broadcast reaches each recipient.

`at:` is one instant for everyone. `local_time:` on `date:` is that wall-clock time in each
recipient's own zone (`customers.timezone`, see customers/timezones.py), or in the
broadcast's `fallback_timezone` when we know none. The snapshot is taken when the first
zone on Earth reaches it (UTC+14), so every recipient is in the snapshot before their turn.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.broadcasts.format import Schedule

EARLIEST_OFFSET = dt.timedelta(hours=14)  # Pacific/Kiritimati: the first to see any wall-clock time


def starts_at(schedule: Schedule) -> dt.datetime:
    """When the snapshot is taken (and the first messages may be due)."""
    if schedule.at is not None:
        return schedule.at.astimezone(dt.timezone.utc)
    naive = dt.datetime.combine(schedule.date, schedule.clock_time)
    return naive.replace(tzinfo=dt.timezone.utc) - EARLIEST_OFFSET


def due_in_zone(schedule: Schedule, zone: str | None) -> dt.datetime:
    """The instant the broadcast is due for a recipient in `zone` (None: unknown)."""
    if schedule.at is not None:
        return schedule.at.astimezone(dt.timezone.utc)
    try:
        tz = ZoneInfo(zone) if zone else ZoneInfo(schedule.fallback_timezone)
    except (ZoneInfoNotFoundError, ValueError):  # a zone the data has but this system does not know
        tz = ZoneInfo(schedule.fallback_timezone)
    local = dt.datetime.combine(schedule.date, schedule.clock_time, tzinfo=tz)
    return local.astimezone(dt.timezone.utc)
