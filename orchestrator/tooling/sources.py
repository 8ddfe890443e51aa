"""Journey files as the tools see them: the validated definition plus where each key is.

The loader reports schema errors with lines; the tools also need lines for journeys that
*did* load (a send step's line, a condition's line), so the line index is rebuilt here from
the same YAML the loader read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from orchestrator.declared import Location, line_for, line_index, readable_key
from orchestrator.journeys.compiler import CompiledJourney, _default_id, compile_journey
from orchestrator.journeys.format import IfStep, WaitForStep
from orchestrator.journeys.loader import (
    JourneyError,
    JourneyLoadError,
    LoadedJourney,
    load_file,
)


@dataclass(frozen=True)
class StepRef:
    location: Location  # ("steps", 2, "then", 0)
    step: object  # one of the step models of journeys.format
    id: str  # the compiled node id (explicit, or positional like "3.then.1")

    @property
    def key(self) -> str:
        return readable_key(self.location)


@dataclass
class JourneySource:
    path: Path
    loaded: LoadedJourney
    compiled: CompiledJourney
    lines: dict

    @property
    def id(self) -> str:
        return self.compiled.id

    def line(self, location: Location) -> int | None:
        return line_for(location, self.lines)

    def steps(self) -> Iterator[StepRef]:
        return walk_steps(self.loaded.definition.steps, ("steps",))


def walk_steps(steps: list, location: Location) -> Iterator[StepRef]:
    """Every step, depth first, with the location and id the compiler gives it."""
    for position, step in enumerate(steps):
        here = location + (position,)
        yield StepRef(here, step, step.id or _default_id(here))
        if isinstance(step, IfStep):
            yield from walk_steps(step.then, here + ("then",))
            yield from walk_steps(step.else_, here + ("else",))
        elif isinstance(step, WaitForStep):
            yield from walk_steps(step.wait_for.on_event, here + ("wait_for", "on_event"))
            yield from walk_steps(step.wait_for.on_timeout, here + ("wait_for", "on_timeout"))


def read_journey(path: Path) -> JourneySource:
    """Load one journey file; raises JourneyLoadError with file, line and key."""
    loaded = load_file(path)
    text = path.read_text(encoding="utf-8")
    return JourneySource(
        path, loaded, compile_journey(loaded.definition, loaded.version), line_index(yaml.compose(text))
    )


def journey_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def find_journey(reference: str, journeys_dir: Path) -> JourneySource:
    """A journey named by file path or by id (looked up in `journeys_dir`)."""
    path = Path(reference)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return read_journey(path)
    for candidate in journey_files(journeys_dir):
        try:
            source = read_journey(candidate)
        except JourneyLoadError:
            if candidate.stem == reference:
                raise
            continue
        if source.id == reference:
            return source
    raise JourneyLoadError([JourneyError(str(journeys_dir), None, "", f"no journey with id '{reference}' here")])
