"""Load `reports/*.yaml`: each file validated with file:line errors, versioned by content."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.declared import FileError, FileLoadError, read_yaml_mapping, validate_model
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


def report_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]) if directory.is_dir() else []


def load_reports(directory: Path) -> ReportCatalog:
    return load_report_files(report_files(directory))


def load_report_files(paths: list[Path]) -> ReportCatalog:
    """Every file's problems with file, line and key; the reports of the files that have none."""
    catalog = ReportCatalog()
    for path in dict.fromkeys(paths):
        try:
            report = parse_report(path.read_text(encoding="utf-8"), path)
        except FileLoadError as error:
            catalog.errors.extend(error.errors)
            if error.unreadable:
                catalog.unreadable.add(path)
            continue
        except OSError as error:
            catalog.errors.append(FileError(str(path), None, "", f"cannot read: {error.strerror}"))
            catalog.unreadable.add(path)
            continue
        if report.id in catalog.reports:
            catalog.errors.append(
                FileError(
                    str(path), None, "id", f"report id '{report.id}' is also used by {catalog.reports[report.id].path}"
                )
            )
            continue
        catalog.reports[report.id] = report
    return catalog
