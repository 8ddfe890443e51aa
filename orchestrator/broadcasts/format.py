"""The broadcast file format: what a marketer writes in `broadcasts/*.yaml`, and what
`POST /v1/broadcasts` takes. Like journeys, the pydantic model is the one definition:
loading validates against it and `broadcasts/broadcast.schema.json` is generated from it.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, Field, field_validator, model_validator

from orchestrator.channels.base import Channel
from orchestrator.journeys.format import Goal, Strict

BROADCAST_ID = r"^[a-z0-9][a-z0-9-]*$"


class Audience(Strict):
    """Who gets it: a segment's members (when the schedule arrives), or named customers."""

    segment: str | None = Field(default=None, min_length=1, description="A segment id (segments/*.yaml)")
    user_ids: list[str] | None = Field(default=None, min_length=1, description="Explicit userIds: tests, one-offs")

    @model_validator(mode="after")
    def _exactly_one(self) -> Audience:
        if (self.segment is None) == (self.user_ids is None):
            raise ValueError("an audience is exactly one of: segment, user_ids")
        return self


class Schedule(Strict):
    """`at:` one instant for everyone, or `local_time:` on `date:` in each recipient's zone."""

    at: AwareDatetime | None = Field(default=None, description="An instant with its offset, e.g. 2026-11-27T09:00Z")
    local_time: str | None = Field(default=None, description="HH:MM in each recipient's own time zone")
    date: dt.date | None = Field(default=None, description="The day of local_time")
    fallback_timezone: str = Field(default="UTC", description="For customers whose time zone is unknown")

    @field_validator("local_time")
    @classmethod
    def _clock_time(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("local_time is HH:MM on a 24-hour clock, e.g. '10:00'")
        return value

    @field_validator("fallback_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}' (an IANA name, e.g. Europe/Paris)") from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        if self.at is not None and (self.local_time or self.date):
            raise ValueError("either at, or local_time with date; not both")
        if self.at is None and not (self.local_time and self.date):
            raise ValueError("a schedule needs at, or local_time and date")
        return self

    @property
    def clock_time(self) -> dt.time | None:
        return dt.time.fromisoformat(self.local_time) if self.local_time else None


class BroadcastFile(Strict):
    schema_: str | None = Field(default=None, alias="$schema")
    id: str = Field(pattern=BROADCAST_ID, max_length=80, description="Defaults to the file name")
    name: str | None = None
    description: str | None = None
    audience: Audience
    channel: Channel
    fallback: Channel | None = Field(default=None, description="Channel used when the first cannot be")
    template: str = Field(min_length=1, description="Template name: a folder under templates/")
    vars: dict[str, Any] = Field(default_factory=dict, description="Extra template variables")
    schedule: Schedule
    marketing: bool = Field(default=True, description="Marketing needs the channel's consent; false: transactional")
    priority: int = Field(default=0, description="As for journeys: which marketing message wins under frequency caps")
    rate_limit_per_minute: int | None = Field(default=None, ge=1, description="At most this many messages a minute")
    pause_when_failure_rate_above: float | None = Field(
        default=None, gt=0, le=1, description="Pause itself when failed / settled passes this fraction"
    )
    failure_rate_min_sends: int = Field(default=100, ge=1, description="Settled sends before the failure rate counts")
    holdout: float = Field(default=0, ge=0, le=0.5, description="Fraction kept as a control group, never messaged")
    goal: Goal | None = None

    @model_validator(mode="after")
    def _fallback_differs(self) -> BroadcastFile:
        if self.fallback is not None and self.fallback == self.channel:
            raise ValueError("fallback must be another channel than channel")
        return self
