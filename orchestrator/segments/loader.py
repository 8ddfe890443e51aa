"""Load `segments/*.yaml`: each file validated with file:line errors, versioned by content."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.declared import FileError, declared_files, load_declared_files, read_yaml_mapping, validate_model
from orchestrator.journeys.loader import content_version
from orchestrator.segments.format import SegmentFile


@dataclass(frozen=True)
class LoadedSegment:
    definition: SegmentFile
    path: Path
    version: str
    source: str = field(default="", repr=False, compare=False)  # the file's text, as published

    @property
    def id(self) -> str:
        return self.definition.id

    @property
    def name(self) -> str:
        return self.definition.name or self.definition.id


@dataclass
class SegmentCatalog:
    segments: dict[str, LoadedSegment] = field(default_factory=dict)
    errors: list[FileError] = field(default_factory=list)
    unreadable: set[Path] = field(default_factory=set)  # not segment files at all: unreadable, not YAML


def parse_segment(text: str, path: Path) -> LoadedSegment:
    source, lines = read_yaml_mapping(text, path, "segment (id, where, ...)")
    source.setdefault("id", path.stem)
    definition = validate_model(SegmentFile, source, lines, path, hidden_tag_prefix="when:")
    return LoadedSegment(definition, path, content_version(source), text)


def load_segments(directory: Path) -> SegmentCatalog:
    return load_segment_files(declared_files(directory))


def load_segment_files(paths: list[Path]) -> SegmentCatalog:
    """Every file's problems with file, line and key; the segments of the files that have none."""
    files = load_declared_files(paths, parse_segment, "segment", lambda segment: segment.id)
    return SegmentCatalog(files.loaded, files.errors, files.unreadable)
