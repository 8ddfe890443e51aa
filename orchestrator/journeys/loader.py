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

import yaml
from pydantic import ValidationError

from orchestrator.journeys.format import JourneyFile

Location = tuple[str | int, ...]


@dataclass(frozen=True)
class JourneyError:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class JourneyLoadError(Exception):
    def __init__(self, errors: list[JourneyError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


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


def _line_index(node: yaml.Node, path: Location = (), index: dict | None = None) -> dict:
    """Map every key path in the document to its 1-based line."""
    index = {} if index is None else index
    index.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            index[path + (key,)] = key_node.start_mark.line + 1
            _line_index(value_node, path + (key,), index)
            index[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            _line_index(item, path + (position,), index)
    return index


def _line_for(location: Location, lines: dict) -> int | None:
    for end in range(len(location), -1, -1):
        if location[:end] in lines:
            return lines[location[:end]]
    return None


def _readable_key(location: Location) -> str:
    key = ""
    for part in location:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def parse_journey(text: str, path: Path) -> LoadedJourney:
    name = str(path)
    try:
        node = yaml.compose(text)
        source = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise JourneyLoadError([JourneyError(name, line, "", f"not valid YAML: {getattr(error, 'problem', error)}")])
    if not isinstance(source, dict) or node is None:
        raise JourneyLoadError([JourneyError(name, 1, "", "a journey file is a YAML mapping (id, trigger, steps, ...)")])
    lines = _line_index(node)
    source.setdefault("id", path.stem)
    try:
        definition = JourneyFile.model_validate(source)
    except ValidationError as error:
        errors = []
        for item in error.errors():
            # Union tags ('step:send') are pydantic's bookkeeping, not keys in the file.
            location = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("step:")))
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = "unknown key"
            errors.append(JourneyError(name, _line_for(location, lines), _readable_key(location), message))
        raise JourneyLoadError(errors) from None
    # Local imports: the compiler needs the format, and this keeps the loader importable alone.
    from orchestrator.journeys.compiler import compile_journey, CompileError

    try:
        compile_journey(definition)
    except CompileError as error:
        raise JourneyLoadError([JourneyError(name, _line_for(error.location, lines), _readable_key(error.location), error.message)])
    return LoadedJourney(definition, source, path, content_version(source))


def load_file(path: Path) -> LoadedJourney:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise JourneyLoadError([JourneyError(str(path), None, "", f"cannot read: {error.strerror}")])
    return parse_journey(text, path)


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
                JourneyError(str(path), None, "id", f"journey id '{journey.definition.id}' is also used by {seen[journey.definition.id]}")
            )
            continue
        seen[journey.definition.id] = path
        report.loaded.append(journey)
    return report
