"""Load journey files: YAML → validated `JourneyFile`, errors naming file, line and key.

One bad file never hides the others: `load_directory` returns what loaded and what failed,
and the caller says both out loud.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.declared import (
    FileError,
    FileLoadError,
    line_for,
    read_declared_text,
    read_yaml_mapping,
    readable_key,
    validate_model,
)
from orchestrator.journeys.format import JourneyFile

# A journey file's errors are the declared-files errors: `file:line: key: what`.
JourneyError = FileError
JourneyLoadError = FileLoadError


@dataclass
class LoadedJourney:
    definition: JourneyFile
    source: dict[str, Any]
    path: Path
    version: str


@dataclass
class LoadReport:
    loaded: list[LoadedJourney] = field(default_factory=list)
    errors: list[JourneyError] = field(default_factory=list)


def content_version(source: dict[str, Any]) -> str:
    """A journey's version is derived from its content, so edits make new versions."""
    canonical = json.dumps(source, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def parse_journey(text: str, path: Path) -> LoadedJourney:
    source, lines = read_yaml_mapping(text, path, "journey (id, trigger, steps, ...)")
    source.setdefault("id", path.stem)
    definition = validate_model(JourneyFile, source, lines, path, hidden_tag_prefix="step:")
    # Local imports: the compiler needs the format, and this keeps the loader importable alone.
    from orchestrator.journeys.compiler import CompileError, compile_journey

    try:
        compile_journey(definition)
    except CompileError as error:
        raise JourneyLoadError(
            [JourneyError(str(path), line_for(error.location, lines), readable_key(error.location), error.message)]
        ) from None
    return LoadedJourney(definition, source, path, content_version(source))


def load_file(path: Path) -> LoadedJourney:
    return parse_journey(read_declared_text(path), path)


def load_directory(directory: Path) -> LoadReport:
    report = LoadReport()
    seen: dict[str, Path] = {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            journey = load_file(path)
        except JourneyLoadError as error:
            report.errors.extend(error.errors)
            continue
        if journey.definition.id in seen:
            report.errors.append(
                JourneyError(
                    str(path),
                    None,
                    "id",
                    f"journey id '{journey.definition.id}' is also used by {seen[journey.definition.id]}",
                )
            )
            continue
        seen[journey.definition.id] = path
        report.loaded.append(journey)
    return report
