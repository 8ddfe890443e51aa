"""Load `segments/*.yaml`: each file validated with file:line errors, versioned by content."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.declared import FileError, FileLoadError, read_yaml_mapping, validate_model
from orchestrator.journeys.loader import content_version
from orchestrator.segments.format import SegmentFile


@dataclass(frozen=True)
class LoadedSegment:
    definition: SegmentFile
    path: Path
    version: str

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
    return LoadedSegment(definition, path, content_version(source))


def segment_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]) if directory.is_dir() else []


def load_segments(directory: Path) -> SegmentCatalog:
    return load_segment_files(segment_files(directory))


def load_segment_files(paths: list[Path]) -> SegmentCatalog:
    """Every file's problems with file, line and key; the segments of the files that have none."""
    catalog = SegmentCatalog()
    for path in dict.fromkeys(paths):
        try:
            segment = parse_segment(path.read_text(encoding="utf-8"), path)
        except FileLoadError as error:
            catalog.errors.extend(error.errors)
            if error.unreadable:
                catalog.unreadable.add(path)
            continue
        except OSError as error:
            catalog.errors.append(FileError(str(path), None, "", f"cannot read: {error.strerror}"))
            catalog.unreadable.add(path)
            continue
        if segment.id in catalog.segments:
            catalog.errors.append(
                FileError(
                    str(path),
                    None,
                    "id",
                    f"segment id '{segment.id}' is also used by {catalog.segments[segment.id].path}",
                )
            )
            continue
        catalog.segments[segment.id] = segment
    return catalog
