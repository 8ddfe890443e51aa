"""Scenarios of segments and broadcasts: the file format, its checks, and how the outcome compares.

A journey scenario runs in memory (`tooling/simulate.py`). A segment is one SQL query and a
broadcast is a snapshot, a worker job and the dispatcher's frequency caps, so a scenario of
them runs the service itself (`tooling/audience_playback.py`) and compares what it did with
what the file expects, the journey scenarios' way: both sides as plain data, a YAML diff.
The format is documented in docs/broadcasts.md ("Scenarios").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from orchestrator.channels.base import Channel
from orchestrator.clock import utc
from orchestrator.events.schemas import IdentifyCall, TrackCall
from orchestrator.journeys.durations import parse_duration
from orchestrator.tooling.inputs import (
    DEFAULT_START,
    CustomerSpec,
    Document,
    EventSpec,
    format_offset,
    parse_offset,
)
from orchestrator.tooling.scenarios import Strict, Text, check_at, project_message
from orchestrator.vocabulary import MessageStatus

if TYPE_CHECKING:
    from orchestrator.tooling.audience_playback import Observed


class ExpectedMessage(Strict):
    user: str
    journey: str | None = Field(default=None, description="`broadcast:<id>` or a journey id")
    channel: Channel | None = None
    at: str | datetime | None = Field(default=None, description="An offset from the start or an ISO-8601 time")
    local_time: str | None = Field(default=None, description="HH:MM in the customer's time zone")
    to: str | None = None
    locale: str | None = None
    body_contains: Text | None = None
    reason: str | None = None
    reason_contains: str | None = None

    _at = field_validator("at")(lambda cls, v: check_at(v))

    @field_validator("local_time")
    @classmethod
    def _clock_time(cls, value: str | None) -> str | None:
        if value is not None:
            datetime.strptime(value, "%H:%M")  # raises ValueError: "does not match format"
        return value


class MembershipCheck(Strict):
    at: str | datetime
    segment: str | None = Field(default=None, description="Default: the scenario's (or its broadcast's) segment")
    members: list[str] | None = None
    entered: list[str] | None = Field(default=None, description="Who entered since the previous check of it")
    left: list[str] | None = Field(default=None, description="Who left since the previous check of it")

    _at = field_validator("at")(lambda cls, v: check_at(v))


class AudienceExpect(Strict):
    segment: list[MembershipCheck] = Field(default_factory=list)
    recipients: list[str] | None = Field(default=None, description="The broadcast's audience snapshot")
    state: Literal["draft", "scheduled", "sending", "paused", "done", "cancelled"] | None = None
    sends: list[ExpectedMessage] = Field(default_factory=list)
    skips: list[ExpectedMessage] = Field(default_factory=list)
    failures: list[ExpectedMessage] = Field(default_factory=list)


class AudienceScenarioFile(Strict):
    segment: str | None = Field(default=None, min_length=1)
    broadcast: str | None = Field(default=None, min_length=1)
    description: str | None = None
    start: datetime | None = None
    horizon: str | None = Field(default=None, description="How long after the last entry to run (default 3d)")
    journeys: list[str] = Field(default_factory=list, description="Journeys live alongside (default none)")
    schedule_at: str | datetime | None = Field(default=None, description="When the broadcast is scheduled")
    customers: list[dict[str, Any]] = Field(min_length=1)
    events: list[dict[str, Any]] = Field(default_factory=list)
    expect: AudienceExpect

    _at = field_validator("schedule_at")(lambda cls, v: check_at(v))

    @model_validator(mode="after")
    def _audience(self) -> AudienceScenarioFile:
        if not (self.segment or self.broadcast):
            raise ValueError("a scenario names a journey, a segment or a broadcast")
        if self.schedule_at is not None and not self.broadcast:
            raise ValueError("schedule_at: only a broadcast is scheduled")
        if (self.expect.recipients is not None or self.expect.state) and not self.broadcast:
            raise ValueError("expect.recipients and expect.state describe a broadcast: name one")
        return self


@dataclass
class Entry:
    at: datetime
    user: str
    call: IdentifyCall | TrackCall | None  # None: erase the customer
    position: int


@dataclass
class Plan:
    document: Document
    spec: AudienceScenarioFile
    start: datetime
    end: datetime
    customers: list[IdentifyCall]
    history: list[Entry]  # before the start: stored with their time, before the clock starts
    entries: list[Entry]
    schedule_at: datetime | None
    checks: list[tuple[datetime, MembershipCheck]]


def plan(document: Document) -> Plan:
    """The file, checked: every problem is `file:line: key: what`."""
    try:
        spec = AudienceScenarioFile.model_validate(document.data)
    except ValidationError as error:
        raise document.validation_error(error, ()) from None
    start = spec.start or DEFAULT_START
    start = start if start.tzinfo else start.replace(tzinfo=DEFAULT_START.tzinfo)
    customers = []
    for index, data in enumerate(spec.customers):
        try:
            person = CustomerSpec.model_validate(data)
            customers.append(IdentifyCall(userId=person.userId, traits=person.traits))
        except ValidationError as error:
            raise document.validation_error(error, ("customers", index)) from None
    known = {c.userId for c in customers}
    entries = [_entry(document, index, item, start, known) for index, item in enumerate(spec.events)]
    entries.sort(key=lambda e: (e.at, e.position))
    schedule_at = parse_offset(spec.schedule_at, start) if spec.schedule_at is not None else None
    if spec.broadcast and schedule_at is None:
        schedule_at = start
    checks = [(parse_offset(check.at, start), check) for check in spec.expect.segment]
    for index, (at, check) in enumerate(checks):
        if at < start:
            raise document.error(("expect", "segment", index, "at"), "a check is at or after the start")
        if index and at < checks[index - 1][0]:  # "entered since the previous check" needs an order
            raise document.error(("expect", "segment", index, "at"), "checks are listed in time order")
        if not (check.segment or spec.segment or spec.broadcast):
            raise document.error(("expect", "segment", index), "which segment? name it here or at the top")
    try:
        horizon = parse_duration(spec.horizon or "3d")
    except ValueError as error:
        raise document.error(("horizon",), str(error)) from None
    moments = [start, *(e.at for e in entries), *(at for at, _ in checks), *([schedule_at] if schedule_at else [])]
    return Plan(
        document,
        spec,
        start,
        max(moments) + horizon,
        customers,
        [e for e in entries if e.at < start],
        [e for e in entries if e.at >= start],
        schedule_at,
        checks,
    )


def _entry(document: Document, index: int, item: Any, start: datetime, known: set[str]) -> Entry:
    here = ("events", index)
    if not isinstance(item, dict):
        raise document.error(here, "an entry is {at, user, event | traits | erase}")
    item = dict(item)
    user, erase = item.pop("user", None), item.pop("erase", None)
    if user is None:
        raise document.error(here, "user: whose event is it? (a userId among customers)")
    if user not in known:
        raise document.error(here + ("user",), f"'{user}' is not among customers: {', '.join(sorted(known))}")
    if "segment_entered" in item or "segment_left" in item:
        raise document.error(here, "segments are evaluated here: give the events that move the customer instead")
    try:
        at = parse_offset(item.get("at", "0s"), start)
    except ValueError as error:
        raise document.error(here + ("at",), str(error)) from None
    if erase is not None:
        if erase is not True or set(item) - {"at"}:
            raise document.error(here + ("erase",), "write {at, user, erase: true} and nothing else")
        return Entry(at, user, None, index)
    try:
        spec = EventSpec.model_validate(item)
        if spec.traits is not None:
            return Entry(at, user, IdentifyCall(userId=user, traits=spec.traits, timestamp=at), index)
        call = TrackCall(userId=user, event=spec.event, properties=spec.properties, timestamp=at)
    except ValidationError as error:
        raise document.validation_error(error, here) from None
    return Entry(at, user, call, index)


# --- comparing: the journey scenarios' way (plain data, YAML, a diff) -----------------------

OUTCOMES = {
    "sends": (MessageStatus.queued, MessageStatus.sending, MessageStatus.sent, MessageStatus.delivered),
    "skips": (MessageStatus.skipped,),
    "failures": (MessageStatus.failed, MessageStatus.undelivered),
}


def _shown_at(value: str | datetime, start: datetime) -> str:
    """As the scenario wrote it: an offset stays an offset, a time stays a time (UTC)."""
    moment = parse_offset(value, start)
    return format_offset(moment, start) if isinstance(value, str) and "T" not in value else _iso(moment)


def _iso(moment: datetime) -> str:
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def expected_view(plan: Plan) -> dict[str, Any]:
    expect, view = plan.spec.expect, {}
    if expect.segment:
        view["segment"] = [
            {
                "at": _shown_at(check.at, plan.start),
                **({"segment": check.segment} if check.segment else {}),
                **{
                    k: sorted(set(getattr(check, k)))
                    for k in ("members", "entered", "left")
                    if getattr(check, k) is not None
                },
            }
            for check in expect.segment
        ]
    if expect.recipients is not None:
        view["recipients"] = sorted(expect.recipients)
    if expect.state:
        view["state"] = expect.state
    for key in OUTCOMES:
        items = []
        for item in getattr(expect, key):
            data = item.model_dump(mode="json", exclude_none=True)
            if "at" in data:
                data["at"] = _shown_at(item.at, plan.start)
            items.append(data)
        view[key] = items
    return view


def actual_view(plan: Plan, observed: Observed) -> dict[str, Any]:
    expect, view = plan.spec.expect, {}
    if expect.segment:
        view["segment"] = [dict(seen, at=_shown_at(seen["at"], plan.start)) for seen in observed.checks]
    if expect.recipients is not None:
        view["recipients"] = observed.recipients
    if expect.state:
        view["state"] = observed.state
    for key, statuses in OUTCOMES.items():
        wanted = getattr(expect, key)
        messages = [m for m in observed.messages if m["status"] in statuses]
        view[key] = [
            _project(message, wanted[i] if i < len(wanted) else None, plan.start) for i, message in enumerate(messages)
        ]
    return view


def _project(message: dict[str, Any], wanted: ExpectedMessage | None, start: datetime) -> dict[str, Any]:
    if wanted is None:  # nobody expected this message: show what identifies it
        shown = {k: message[k] for k in ("user", "journey", "channel")}
        shown["at"] = _iso(message["at"])
        shown.update({"body": message["body"]} if message["status"] not in OUTCOMES["skips"] else {})
        shown.update({"reason": message["reason"]} if message["reason"] else {})
        return shown
    expected = wanted.model_dump(exclude_none=True)
    simple = {k: v for k, v in expected.items() if k not in ("at", "reason_contains")}
    shown = project_message(message, simple, start)
    if "at" in expected:
        shown["at"] = (
            format_offset(message["at"], start)
            if isinstance(wanted.at, str) and "T" not in wanted.at
            else _iso(message["at"])
        )
    if "reason_contains" in expected:
        reason = message["reason"] or ""
        if wanted.reason_contains in reason:
            shown["reason_contains"] = wanted.reason_contains
        else:
            shown["reason"] = reason
    return {k: shown[k] for k in [*expected, *(k for k in shown if k not in expected)] if k in shown}
