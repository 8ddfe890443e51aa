"""Load `reports/*.yaml`: each file validated with file:line errors, versioned by content."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.declared import FileError, declared_files, load_declared_files, read_yaml_mapping, validate_model
from orchestrator.journeys.loader import content_version
from orchestrator.reports.format import ReportFile


@dataclass(frozen=True)
class LoadedReport:
    definition: ReportFile
    path: Path
    version: str

    @property
    def id(self) -> str:
        return self.definition.id


@dataclass
class ReportCatalog:
    reports: dict[str, LoadedReport] = field(default_factory=dict)
    errors: list[FileError] = field(default_factory=list)
    unreadable: set[Path] = field(default_factory=set)  # not a report file at all: unreadable, not YAML


def parse_report(text: str, path: Path) -> LoadedReport:
    source, lines = read_yaml_mapping(text, path, "report (recipients, schedule, ...)")
    source.setdefault("id", path.stem)
    return LoadedReport(validate_model(ReportFile, source, lines, path), path, content_version(source))


def load_reports(directory: Path) -> ReportCatalog:
    return load_report_files(declared_files(directory))


def load_report_files(paths: list[Path]) -> ReportCatalog:
    """Every file's problems with file, line and key; the reports of the files that have none."""
    files = load_declared_files(paths, parse_report, "report", lambda report: report.id)
    return ReportCatalog(files.loaded, files.errors, files.unreadable)
