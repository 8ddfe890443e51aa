"""`orchestrator test`: scenario files run through the simulator, compared to what must happen.

A scenario is a customer, a list of timed events and the expected outcome (docs/journeys.md,
"Marketer tooling"). `sends`, `skips` and `failures` are complete lists in the order the
messages happen: a message nobody expected fails the scenario as surely as a missing one.
"""

from __future__ import annotations

import difflib
import enum
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator.channels.base import Channel
from orchestrator.config import Settings
from orchestrator.journeys.durations import parse_duration
from orchestrator.journeys.loader import JourneyLoadError
from orchestrator.policies.frequency import NO_CAPS, FrequencyPolicy
from orchestrator.templating.store import TemplateStore
from orchestrator.tooling.inputs import (
    DEFAULT_START,
    Document,
    InputError,
    format_offset,
    parse_customer,
    parse_events,
    parse_offset,
    read_document,
)
from orchestrator.tooling.simulate import DEFAULT_HORIZON, SimulationResult, simulate
from orchestrator.tooling.sources import JourneySource, find_journey
from orchestrator.vocabulary import MessageStatus

log = logging.getLogger("orchestrator.scenarios")

if TYPE_CHECKING:
    from orchestrator.tooling.audience_playback import AudienceScenarios, Happening

Text = str | list[str]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_at(value: str | datetime | None) -> str | datetime | None:
    if value is not None:
        parse_offset(value, DEFAULT_START)  # raises ValueError with the reason
    return value


class ExpectedSend(Strict):
    step: str
    channel: Channel
    at: str | datetime | None = Field(default=None, description="Offset from the start, e.g. 1h")
    to: str | None = None
    locale: str | None = None
    encoding: Literal["GSM-7", "UCS-2"] | None = None
    segments: int | None = None
    subject_contains: Text | None = None
    body_contains: Text | None = None
    # A shortened link's token says nothing; where it leads is what a scenario can expect.
    links_to: Text | None = Field(default=None, description="Text each found in a link's web or app target")

    _at = field_validator("at")(lambda cls, v: check_at(v))


class ExpectedSkip(Strict):
    step: str
    channel: Channel | None = None
    reason: str | None = None
    at: str | datetime | None = None

    _at = field_validator("at")(lambda cls, v: check_at(v))


class Expect(Strict):
    sends: list[ExpectedSend] = Field(default_factory=list)
    skips: list[ExpectedSkip] = Field(default_factory=list)
    failures: list[ExpectedSkip] = Field(default_factory=list)
    status: Literal["active", "completed", "exited", "failed", "not entered"] | None = None
    exit_reason: str | None = None
    converted: bool | None = None
    enrollments: int | None = None


class ScenarioFile(Strict):
    journey: str = Field(min_length=1, description="A journey id, or a .yaml path relative to this file")
    description: str | None = None
    start: datetime | None = None
    horizon: str | None = None
    locale: str | None = None
    customer: dict[str, Any]
    events: list[dict[str, Any]] = Field(min_length=1)
    expect: Expect


def is_audience_scenario(data: Any) -> bool:
    """A scenario of a segment or a broadcast (docs/broadcasts.md, "Scenarios") rather than of a journey."""
    return isinstance(data, dict) and "journey" not in data and ("segment" in data or "broadcast" in data)


@dataclass
class ScenarioResult:
    path: Path
    description: str | None = None
    passed: bool = False
    diff: list[str] = field(default_factory=list)
    error: str | None = None
    simulation: SimulationResult | None = None  # a journey scenario's run
    happenings: list[Happening] = field(default_factory=list)  # a segment or broadcast scenario's

    @property
    def name(self) -> str:
        return self.path.stem


def scenario_files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted([*path.rglob("*.yaml"), *path.rglob("*.yml")])
        else:
            found.append(path)
    return list(dict.fromkeys(found))


class ScenarioRunner:
    def __init__(
        self,
        journeys_dir: Path,
        templates: TemplateStore,
        link_settings: Settings | None = None,
        frequency: FrequencyPolicy = NO_CAPS,
        audiences: AudienceScenarios | None = None,
    ) -> None:
        """`link_settings`: shorten links as the worker does (`simulate.simulation_link_settings`);
        `frequency`: the caps the dispatcher applies; `audiences`: what runs the scenarios of
        segments and broadcasts (`tooling/audience_scenarios.py`)."""
        self.journeys_dir, self.templates, self.link_settings = journeys_dir, templates, link_settings
        self.frequency, self.audiences = frequency, audiences

    def run(self, path: Path) -> ScenarioResult:
        result = ScenarioResult(path)
        try:
            return self._run(path, result)
        except Exception as error:  # one scenario's crash must not hide the other scenarios' verdicts
            log.exception("scenario %s could not run", path)
            result.error = (
                f"could not run: {type(error).__name__}: {error}\n"
                "(a fault in orchestrator, not in your file: please report it with this scenario)"
            )
            return result

    def _run(self, path: Path, result: ScenarioResult) -> ScenarioResult:
        try:
            document = read_document(path)
            if not isinstance(document.data, dict):
                raise document.error((), "a scenario is a mapping: journey, customer, events, expect")
            if is_audience_scenario(document.data):
                return self._run_audience(document, result)
            try:
                spec = ScenarioFile.model_validate(document.data)
            except ValidationError as error:
                raise document.validation_error(error, ()) from None
            result.description = spec.description
            journey = self._journey(spec.journey, path)
            start = spec.start or DEFAULT_START
            start = start if start.tzinfo else start.replace(tzinfo=DEFAULT_START.tzinfo)
            customer = parse_customer(document, ("customer",), spec.locale)
            events = parse_events(document, start, ("events",))
            horizon = _horizon(document, spec.horizon)
        except InputError as error:
            result.error = "\n".join(error.messages)
            return result
        except JourneyLoadError as error:
            result.error = "\n".join(str(e) for e in error.errors)
            return result
        result.simulation = simulate(
            journey, self.templates, customer, events, start, horizon, self.link_settings, self.frequency
        )
        expected, actual = expected_view(spec.expect, start), actual_view(spec.expect, result.simulation)
        result.passed = expected == actual
        if not result.passed:
            result.diff = _diff(expected, actual)
        return result

    def _run_audience(self, document: Document, result: ScenarioResult) -> ScenarioResult:
        from orchestrator.tooling.audience_scenarios import actual_view, expected_view, plan

        try:
            scenario = plan(document)
            result.description = scenario.spec.description
            if self.audiences is None:
                raise document.error((), "a scenario of a segment or broadcast needs the service's settings")
            observed = self.audiences.run(scenario, result.name)
        except InputError as error:
            result.error = "\n".join(error.messages)
            return result
        result.happenings = observed.timeline
        expected, actual = expected_view(scenario), actual_view(scenario, observed)
        result.passed = expected == actual
        if not result.passed:
            result.diff = _diff(expected, actual)
        return result

    def _journey(self, reference: str, scenario: Path) -> JourneySource:
        if reference.endswith((".yaml", ".yml")):
            return find_journey(str((scenario.parent / reference).resolve()), self.journeys_dir)
        return find_journey(reference, self.journeys_dir)


def _horizon(document: Document, value: str | None) -> timedelta:
    if value is None:
        return DEFAULT_HORIZON
    try:
        return parse_duration(value)
    except ValueError as error:
        raise document.error(("horizon",), str(error)) from None


# --- comparing: both sides become plain data, shown as YAML and diffed ----------------------


def _at(value: str | datetime, start: datetime) -> str:
    return format_offset(parse_offset(value, start), start)


def expected_view(expect: Expect, start: datetime) -> dict[str, Any]:
    view: dict[str, Any] = {}
    for key in ("status", "exit_reason", "converted", "enrollments"):
        if getattr(expect, key) is not None:
            view[key] = getattr(expect, key)
    for key in ("sends", "skips", "failures"):
        items = []
        for item in getattr(expect, key):
            data = item.model_dump(mode="json", exclude_none=True)
            if "at" in data:
                data["at"] = _at(data["at"], start)
            items.append(data)
        view[key] = items
    return view


def actual_view(expect: Expect, simulation: SimulationResult) -> dict[str, Any]:
    outcome = simulation.outcome()
    view: dict[str, Any] = {
        key: outcome[key]
        for key in ("status", "exit_reason", "converted", "enrollments")
        if getattr(expect, key) is not None
    }
    for key, status in (
        ("sends", MessageStatus.queued),
        ("skips", MessageStatus.skipped),
        ("failures", MessageStatus.failed),
    ):
        messages = [m for m in simulation.messages if m["status"] == status]
        wanted = getattr(expect, key)
        view[key] = [
            project_message(
                message, wanted[i].model_dump(exclude_none=True) if i < len(wanted) else None, simulation.start
            )
            for i, message in enumerate(messages)
        ]
    return view


def project_message(message: dict[str, Any], wanted: dict[str, Any] | None, start: datetime) -> dict[str, Any]:
    """The message as the expectation describes it: same keys, so equal when it matches."""
    if wanted is None:  # nobody expected this message: show what identifies it
        shown = {"step": message["step"], "channel": message["channel"], "at": format_offset(message["at"], start)}
        if message["status"] == MessageStatus.queued:
            shown["body"] = message["body"]
        else:
            shown["reason"] = message["reason"]
        return shown
    shown: dict[str, Any] = {}
    for key, value in wanted.items():
        if key == "at":
            shown[key] = format_offset(message["at"], start)
        elif key == "links_to":
            targets = [target for link in message["links"] for target in (link["url"], link.get("app")) if target]
            needles = value if isinstance(value, list) else [value]
            if all(any(needle in target for target in targets) for needle in needles):
                shown[key] = value
            else:
                shown["links"] = targets
        elif key in ("body_contains", "subject_contains"):
            field_name = key.removesuffix("_contains")
            text = message[field_name] or ""
            needles = value if isinstance(value, list) else [value]
            if all(needle in text for needle in needles):
                shown[key] = value
            else:
                shown[field_name] = text
        else:
            shown[key] = message[key]
    return shown


class _Dumper(yaml.SafeDumper):
    """Statuses are `StrEnum`s; a scenario file shows them as the plain words they are."""


_Dumper.add_multi_representer(enum.StrEnum, lambda dumper, value: dumper.represent_str(str(value)))


def _diff(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    return list(difflib.unified_diff(_dump(expected), _dump(actual), "expected", "actual", lineterm="", n=1000))


def _dump(view: dict[str, Any]) -> list[str]:
    return yaml.dump(view, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000).splitlines()
