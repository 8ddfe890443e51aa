"""Reading what marketers hand the tools: a customer, a list of timed events.

A customer file is shaped like a Segment identify call (`userId`, `traits`) and is checked
by the same model the API uses, so a phone number the API would refuse is refused here.
An events file is a list of `{at, event, properties}` (a track call) or `{at, traits}` (an
identify call that changes traits mid-run); `at` is an offset from the start (`0s`, `30m`,
`1h30m`, `2d`) or an ISO-8601 time. Errors name the file, line and key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator.declared import Location, line_for, line_index, readable_key
from orchestrator.events.ingest import apply_traits
from orchestrator.events.schemas import IdentifyCall, check_locale
from orchestrator.journeys.durations import _UNIT_SECONDS
from orchestrator.storage.models import Customer
from orchestrator.vocabulary import segment_entered_event, segment_left_event

# A Monday, 09:00 in California and 18:00 in Europe: daytime for the sample customers, whose
# quiet hours follow the time zone of their phone numbers. Fixed so runs repeat.
DEFAULT_START = datetime(2026, 3, 2, 17, 0, tzinfo=timezone.utc)


class InputError(Exception):
    def __init__(self, messages: list[str]) -> None:
        self.messages = messages
        super().__init__("\n".join(messages))


@dataclass
class Document:
    """A parsed YAML/JSON file and the line of every key in it."""

    file: str
    data: Any
    lines: dict

    def where(self, location: Location) -> str:
        line = line_for(location, self.lines)
        return f"{self.file}:{line}" if line else self.file

    def error(self, location: Location, message: str) -> InputError:
        key = readable_key(location)
        return InputError([f"{self.where(location)}: {key + ': ' if key else ''}{message}"])

    def validation_error(self, error: ValidationError, prefix: Location) -> InputError:
        messages = []
        for item in error.errors():
            location = prefix + tuple(item["loc"])
            key = readable_key(location)
            text = item["msg"].removeprefix("Value error, ")
            messages.append(
                f"{self.where(location)}: {key + ': ' if key else ''}{'unknown key' if item['type'] == 'extra_forbidden' else text}"
            )
        return InputError(messages)


def read_document(path: Path) -> Document:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError([f"{path}: cannot read: {error.strerror}"]) from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise InputError(
            [f"{path}:{mark.line + 1 if mark else '?'}: not valid YAML/JSON: {getattr(error, 'problem', error)}"]
        ) from None
    return Document(str(path), data, line_index(node) if node is not None else {})


def parse_offset(value: Any, start: datetime) -> datetime:
    """`0s`, `+30m`, `1h30m`, `2d` after the start, or an ISO-8601 time (UTC when naive)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, int) and not isinstance(value, bool) and value == 0:
        return start
    if not isinstance(value, str):
        raise ValueError("write `at` as an offset (0s, 30m, 1h30m, 2d) or an ISO-8601 time")
    text = value.strip().lower().removeprefix("+")
    if text == "0" or re.fullmatch(r"\s*(\d+\s*[smhdw]\s*)+", text):
        seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in re.findall(r"(\d+)\s*([smhdw])", text))
        return start + timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"'{value}' is neither an offset (0s, 30m, 1h30m, 2d) nor an ISO-8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def format_span(delta: timedelta) -> str:
    """`1h30m`, `8d`, `72h` → `3d`: days at most, as people count a journey's time."""
    seconds, parts = abs(int(delta.total_seconds())), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def format_offset(at: datetime, start: datetime) -> str:
    """`+1h30m`, `-2h`: how long after (or before) the start of the run."""
    return ("-" if at < start else "+") + format_span(at - start)


def format_moment(at: datetime, start: datetime) -> str:
    """`2026-03-02 10:00 (+1h)`."""
    clock = at.strftime("%Y-%m-%d %H:%M:%S" if at.second else "%Y-%m-%d %H:%M")
    return f"{clock} ({format_offset(at, start)})"


class CustomerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    userId: str = Field(min_length=1, max_length=255)
    traits: dict[str, Any] = Field(default_factory=dict)


class EventSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: Any = "0s"
    event: str | None = Field(default=None, min_length=1)
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] | None = None  # an identify call instead of a track call
    # The simulator does not evaluate segments: a scenario says when the customer entered or
    # left one, and that arrives as the Track event the segment worker would ingest.
    segment_entered: str | None = Field(default=None, min_length=1)
    segment_left: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> EventSpec:
        segment = [
            (k, v) for k, v in (("segment_entered", self.segment_entered), ("segment_left", self.segment_left)) if v
        ]
        if segment:
            if len(segment) > 1 or self.event is not None or self.traits is not None:
                raise ValueError("segment_entered or segment_left stands alone (with at)")
            kind, segment_id = segment[0]
            name = segment_entered_event if kind == "segment_entered" else segment_left_event
            self.event, self.properties = name(segment_id), {"segment": segment_id, **self.properties}
        if (self.event is None) == (self.traits is None):
            raise ValueError(
                "an entry is either a track call (event, properties), an identify call (traits), "
                "or segment_entered / segment_left"
            )
        if self.traits is not None and self.properties:
            raise ValueError("properties belong to events; an identify call has traits")
        return self


@dataclass
class TimedEvent:
    at: datetime
    name: str | None  # None for an identify call
    properties: dict[str, Any]
    traits: dict[str, Any] | None
    position: int  # order in the file, which breaks ties between equal times


# A Segment identify payload may be pasted as is: these fields say nothing about the customer.
SEGMENT_ENVELOPE = {
    "type",
    "messageId",
    "timestamp",
    "context",
    "integrations",
    "anonymousId",
    "sentAt",
    "receivedAt",
    "originalTimestamp",
    "version",
    "channel",
}


def parse_customer(document: Document, prefix: Location = (), locale: str | None = None) -> Customer:
    data = _at(document, prefix)
    if isinstance(data, dict):
        data = {key: value for key, value in data.items() if key not in SEGMENT_ENVELOPE}
    try:
        spec = CustomerSpec.model_validate(data)
        call = IdentifyCall(userId=spec.userId, traits=spec.traits)
    except ValidationError as error:
        raise document.validation_error(error, prefix) from None
    customer = Customer(id=1, user_id=spec.userId, traits={}, created_at=DEFAULT_START, updated_at=DEFAULT_START)
    apply_traits(customer, call.traits.model_dump(exclude_none=True), DEFAULT_START)
    if locale:
        override_locale(customer, locale)
    return customer


def override_locale(customer: Customer, locale: str) -> None:
    try:
        tag = check_locale(locale)
    except ValueError as error:
        raise InputError([f"--locale {locale}: {error}"]) from None
    customer.locale = tag
    customer.traits = {**customer.traits, "locale": tag}


def parse_events(document: Document, start: datetime, prefix: Location = ()) -> list[TimedEvent]:
    data = _at(document, prefix)
    if isinstance(data, dict) and "events" in data:
        data, prefix = data["events"], prefix + ("events",)
    if not isinstance(data, list):
        raise document.error(prefix, "events are a list of {at, event, properties}")
    events = []
    for position, item in enumerate(data):
        here = prefix + (position,)
        try:
            spec = EventSpec.model_validate(item)
        except ValidationError as error:
            raise document.validation_error(error, here) from None
        try:
            at = parse_offset(spec.at, start)
        except ValueError as error:
            raise document.error(here + ("at",), str(error)) from None
        if spec.traits is not None:
            try:
                IdentifyCall(userId="check", traits=spec.traits)
            except ValidationError as error:
                raise document.validation_error(error, here) from None
        events.append(TimedEvent(at, spec.event, spec.properties, spec.traits, position))
    return sorted(events, key=lambda e: (e.at, e.position))


def _at(document: Document, prefix: Location) -> Any:
    data = document.data
    for part in prefix:
        data = data[part]
    return data
