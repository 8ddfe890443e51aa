"""Frequency caps: how many marketing messages a customer may get per channel per calendar
day or week of their own time zone, declared in `policies/frequency.yaml`.

This module is the file and the rule, pure: which period a moment falls in for a customer,
and whether a send may take one of its period's slots given the slots already taken and the
sends still pending ahead of it. `orchestrator.engine.frequency_caps` applies it to the database,
where a unique slot index makes the cap hold however many workers race.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.customers.timezones import local_zone
from orchestrator.declared import read_declared_text, read_yaml_mapping, validate_model
from orchestrator.vocabulary import Channel

REASON_PREFIX = "frequency_cap:"  # every capped message's status_reason starts so (KPIs count them by it)


class Period(enum.StrEnum):
    day = "day"
    week = "week"  # Monday to Sunday, as ISO 8601 counts weeks


class ChannelCaps(BaseModel):
    model_config = ConfigDict(extra="forbid")

    per_day: int | None = Field(default=None, ge=0, description="Marketing messages per local calendar day")
    per_week: int | None = Field(default=None, ge=0, description="Marketing messages per local week (Mon-Sun)")

    @model_validator(mode="after")
    def _something(self) -> ChannelCaps:
        if self.per_day is None and self.per_week is None:
            raise ValueError("give per_day, per_week or both")
        if self.per_day is not None and self.per_week is not None and self.per_week < self.per_day:
            raise ValueError(
                f"per_week ({self.per_week}) is below per_day ({self.per_day}): per_day could never be used"
            )
        return self


class FrequencyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    caps: dict[Channel, ChannelCaps] = Field(default_factory=dict, description="Caps per channel; none: uncapped")


@dataclass(frozen=True)
class Cap:
    channel: str
    period: Period
    limit: int

    def __str__(self) -> str:
        return f"{self.channel} per_{self.period} {self.limit}"


@dataclass(frozen=True)
class FrequencyPolicy:
    caps: dict[str, tuple[Cap, ...]] = field(default_factory=dict)  # channel → its caps
    path: Path | None = None

    def for_channel(self, channel: str) -> tuple[Cap, ...]:
        return self.caps.get(channel, ())

    @property
    def enabled(self) -> bool:
        return bool(self.caps)


NO_CAPS = FrequencyPolicy()


def parse_frequency_file(text: str, path: Path) -> FrequencyPolicy:
    source, lines = read_yaml_mapping(text, path, "frequency caps (caps: {sms: {per_day: 1}})")
    declared = validate_model(FrequencyFile, source, lines, path)
    caps = {
        channel.value: tuple(
            Cap(channel.value, period, limit)
            for period, limit in ((Period.day, rules.per_day), (Period.week, rules.per_week))
            if limit is not None
        )
        for channel, rules in declared.caps.items()
    }
    return FrequencyPolicy(caps, path)


def load_frequency_policy(path: Path) -> FrequencyPolicy:
    """The caps in `path`; no file means no caps. A file that is there but wrong raises
    `FileLoadError`: sending uncapped because of a typo would break the promise silently."""
    if not path.is_file():
        return FrequencyPolicy(path=path)
    return parse_frequency_file(read_declared_text(path), path)


@lru_cache(maxsize=4096)  # a dispatch round asks the same (period, moment, zone) for every customer of a zone
def period_start(period: Period, moment: datetime, zone_name: str | None) -> date:
    """The first local day of the period `moment` falls in, in the customer's zone."""
    local_day = moment.astimezone(local_zone(zone_name)).date()
    return local_day if period == Period.day else local_day - timedelta(days=local_day.weekday())


@dataclass(frozen=True, slots=True)
class Contender:
    """A marketing send that wants a slot: ranked by priority (higher first), then by when it
    is due, then by id, so every worker ranks the same sends the same way."""

    message_id: int
    priority: int
    due_at: datetime

    @property
    def rank(self) -> tuple[int, datetime, int]:
        return (-self.priority, self.due_at, self.message_id)


def refusal(cap: Cap, holders: list[int] | list[str], ahead: list[Contender]) -> str | None:
    """Why a send may not take a slot of `cap`'s current period, or None if it may.

    `holders`: messages holding the period's slots (ids; send keys in a simulation); `ahead`: pending sends of the same
    customer and channel, due within the period, that outrank this one. It takes a slot only
    if one is left after every send ahead of it has had its own."""
    if len(holders) + len(ahead) < cap.limit:
        return None
    if ahead:
        winner = min(ahead, key=lambda c: c.rank)
        return f"{REASON_PREFIX} {cap} (yields to message {winner.message_id}, priority {winner.priority})"
    last = f"; last slot taken by message {holders[-1]}" if holders else ""
    return f"{REASON_PREFIX} {cap} (reached{last})"
