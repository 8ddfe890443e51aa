"""Quiet hours: SMS and WhatsApp marketing never reaches a phone at night.

The window is in the recipient's own time zone; a send that falls inside it waits until
the window ends (the next morning), then goes out.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.customers.timezones import local_zone
from orchestrator.vocabulary import PHONE_CHANNELS

QUIET_CHANNELS = PHONE_CHANNELS  # e-mail waits in the inbox; a phone buzzes


class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: time = Field(default=time(21, 0), description="Local time quiet hours begin, e.g. 21:00")
    end: time = Field(default=time(8, 0), description="Local time quiet hours end, e.g. 08:00")
    enabled: bool = True

    def resume_at(self, moment: datetime, zone_name: str | None) -> datetime | None:
        """When a send at `moment` may go out, or None if it may go out now."""
        if not self.enabled or self.start == self.end:
            return None
        zone = local_zone(zone_name)
        local = moment.astimezone(zone)
        now = local.time()
        overnight = self.start > self.end
        quiet = (now >= self.start or now < self.end) if overnight else (self.start <= now < self.end)
        if not quiet:
            return None
        end_day = local.date() + timedelta(days=1) if overnight and now >= self.start else local.date()
        resume = datetime.combine(end_day, self.end, tzinfo=zone)
        return resume.astimezone(timezone.utc)


def describe_hold(until: datetime, zone_name: str | None) -> str:
    """How a person reads a quiet-hours hold: "held by quiet hours until 08:00 America/Los_Angeles"."""
    zone = local_zone(zone_name)
    local = until.astimezone(zone)
    return f"held by quiet hours until {local:%H:%M} {zone.key}"
