"""The report file format: who gets which KPIs of what, when, in which language.

```yaml
id: weekly-kpis                 # defaults to the file name
name: Weekly KPIs
recipients: [ceo@example.com]
schedule: {every: week, day: monday, at: "08:00", timezone: Europe/Paris}
scope: {journey: abandoned-cart, channel: sms}   # optional: everything by default
kpis: [sent, delivery_rate, conversion_rate, revenue]   # optional: the default set
locale: fr                      # en, fr, es or zh-Hant
```
A report covers the period that ended when it is sent: the previous day, the previous week
(starting on its `day`) or the previous calendar month, in the schedule's time zone.
"""

from __future__ import annotations

import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Message KPIs (GET /v1/kpis row fields) and customer KPIs a report may show.
MESSAGE_KPIS = (
    "messages",
    "sent",
    "delivered",
    "delivery_rate",
    "failed",
    "skipped",
    "recipients",
    "open_rate",
    "click_rate",
    "bounce_rate",
    "reply_rate",
    "opt_out_rate",
    "conversions",
    "conversion_rate",
    "revenue",
    "average_order_value",
    "cost",
    "cost_per_acquisition",
    "return_on_spend",
)
CUSTOMER_KPIS = ("customer_lifetime_value", "retention_rate", "nps")
DEFAULT_KPIS = (
    "sent",
    "delivery_rate",
    "open_rate",
    "click_rate",
    "conversion_rate",
    "revenue",
    "average_order_value",
    "opt_out_rate",
    "customer_lifetime_value",
    "retention_rate",
    "nps",
)
LOCALES = ("en", "fr", "es", "zh-Hant")


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    every: Literal["day", "week", "month"]
    at: str = Field(default="08:00", description="local time HH:MM")
    # Not `on`: YAML 1.1 reads a bare `on` key as the boolean true.
    day: str | int | None = Field(default=None, description="a weekday for weekly reports, a day 1-28 for monthly ones")
    timezone: str = "UTC"

    @field_validator("at")
    @classmethod
    def _time(cls, value: str) -> str:
        match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value)
        if not match:
            raise ValueError("a time of day as HH:MM, e.g. 08:00")
        return f"{int(match.group(1)):02d}:{match.group(2)}"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}' (an IANA name such as Europe/Paris)") from None
        return value

    @model_validator(mode="after")
    def _day(self) -> Schedule:
        if self.every == "week":
            day = str(self.day or "monday").lower()
            if day not in WEEKDAYS:
                raise ValueError(f"day: a weekly report names a weekday ({', '.join(WEEKDAYS)})")
            self.day = day
        elif self.every == "month":
            day = self.day if self.day is not None else 1
            if not isinstance(day, int) or not 1 <= day <= 28:
                raise ValueError("day: a monthly report names a day of the month from 1 to 28")
            self.day = day
        elif self.day is not None:
            raise ValueError("day: a daily report runs every day; remove `day`")
        return self


class Scope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    journey: str | None = None
    channel: Literal["email", "sms", "whatsapp"] | None = None


class ReportFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")
    name: str | None = None
    recipients: list[str] = Field(min_length=1, max_length=100)
    schedule: Schedule
    scope: Scope = Scope()
    kpis: list[Literal[MESSAGE_KPIS + CUSTOMER_KPIS]] = Field(default_factory=lambda: list(DEFAULT_KPIS), min_length=1)
    locale: Literal[LOCALES] = "en"

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        normalized = []
        for value in values:
            try:
                normalized.append(validate_email(value, check_deliverability=False).normalized)
            except EmailNotValidError as error:
                raise ValueError(f"'{value}' is not an e-mail address: {error}") from None
        return normalized
