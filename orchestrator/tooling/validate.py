"""`orchestrator validate`: check journeys, templates, reports, segments and broadcasts
without starting anything (broadcasts: the configured directory, when no paths are given).

Paths may be journey files, directories of journeys, a templates directory, or report and
segment files and directories (those in the configured reports or segments directory, or in
any folder named `reports` or `segments`); with none, the configured journeys, templates,
reports and segments directories are checked. Templates are always checked too (the configured directory unless another is
given), since journeys refer to them, and so is the frequency caps file
(`policies/frequency.yaml`) when given, which every marketing send obeys. SMS lengths are
measured with links at their short length under the configured base URL (`checks_sms`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.config import Settings
from orchestrator.declared import FileLoadError, declared_files
from orchestrator.journeys.loader import JourneyLoadError, load_file
from orchestrator.policies.frequency import load_frequency_policy
from orchestrator.templating.store import TemplateStore
from orchestrator.tooling.checks_broadcasts import check_broadcast_file
from orchestrator.tooling.checks_flow import check_flow
from orchestrator.tooling.checks_reports import check_reports
from orchestrator.tooling.checks_segments import check_segment_references, check_segments
from orchestrator.tooling.checks_sms import check_sms_lengths
from orchestrator.tooling.checks_templates import check_sends, check_store
from orchestrator.tooling.findings import ERROR, WARNING, Finding, plural, sort_findings
from orchestrator.tooling.sources import JourneySource, journey_files, read_journey


@dataclass
class Targets:
    journey_files: list[Path] = field(default_factory=list)
    templates_dir: Path | None = None
    report_files: list[Path] = field(default_factory=list)
    segment_files: list[Path] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)
    empty: list[Path] = field(default_factory=list)


@dataclass
class ValidationReport:
    findings: list[Finding]
    journeys: int
    templates: int
    reports: int = 0
    unusable_input: bool = False
    segments: int = 0  # a path that does not exist, a file that cannot be read or parsed
    broadcasts: int = 0

    @property
    def summary(self) -> str:
        counts = [plural(self.journeys, "journey file"), plural(self.templates, "template")]
        counts += [plural(self.reports, "report file")] if self.reports else []
        counts += [plural(self.segments, "segment file")] if self.segments else []
        return ", ".join(counts + ([plural(self.broadcasts, "broadcast")] if self.broadcasts else []))


def is_templates_dir(path: Path) -> bool:
    """Folders of `<locale>.txt` files (it may hold other files too, e.g. auto-replies.yaml)."""
    return any(folder.is_dir() and any(folder.glob("*.txt")) for folder in path.iterdir())


def is_in_folder(path: Path, directory: Path, name: str) -> bool:
    """Whether `path` is `directory` or in it, or a folder called `name` (or in one)."""
    folder = path if path.is_dir() else path.parent
    return folder.name == name or folder.resolve() == directory.resolve()


def classify(paths: list[Path], reports_dir: Path, segments_dir: Path) -> Targets:
    """A report (segment) file or folder is one in the reports (segments) directory or in a
    folder named `reports` (`segments`); another file is a journey; a directory of template
    folders is the templates directory; any other directory holds journeys (its *.yaml files)."""
    targets = Targets()
    for path in paths:
        if path.exists() and is_in_folder(path, reports_dir, "reports"):
            targets.report_files += declared_files(path) if path.is_dir() else [path]
        elif path.exists() and is_in_folder(path, segments_dir, "segments"):
            targets.segment_files += declared_files(path) if path.is_dir() else [path]
        elif path.is_file():
            targets.journey_files.append(path)
        elif path.is_dir() and is_templates_dir(path):
            targets.templates_dir = path
        elif path.is_dir() and journey_files(path):
            targets.journey_files += journey_files(path)
        elif path.is_dir():
            targets.empty.append(path)
        else:
            targets.missing.append(path)
    return targets


def validate(
    paths: list[Path],
    journeys_dir: Path,
    templates_dir: Path,
    default_locale: str = "en",
    *,
    reports_dir: Path | None = None,
    segments_dir: Path | None = None,
    link_settings: Settings | None = None,
    broadcasts_dir: Path | None = None,
    frequency_file: Path | None = None,
) -> ValidationReport:
    """`reports_dir` and `segments_dir` default to the `reports` and `segments` folders beside
    the journeys directory.
    `link_settings` give the short-link base SMS are measured with (default settings:
    `http://127.0.0.1:8000`). Broadcasts (`broadcasts_dir`) are checked when no paths are given.
    """
    broadcasts = [] if paths or broadcasts_dir is None else declared_files(broadcasts_dir)
    link_settings = link_settings or Settings()
    reports_dir = reports_dir or journeys_dir.parent / "reports"
    segments_dir = segments_dir or journeys_dir.parent / "segments"
    if paths:
        targets = classify(paths, reports_dir, segments_dir)
        targets.templates_dir = targets.templates_dir or templates_dir
    else:
        targets = Targets(
            journey_files(journeys_dir), templates_dir, declared_files(reports_dir), declared_files(segments_dir)
        )
    findings = [Finding(ERROR, str(p), None, "", "no such file or directory") for p in targets.missing]
    findings += [
        Finding(WARNING, str(p), None, "", "no journey files (*.yaml) nor template folders here") for p in targets.empty
    ]
    store = TemplateStore.load(targets.templates_dir, default_locale)
    findings += check_store(store)
    if frequency_file is not None:
        findings += check_frequency_file(frequency_file)
    seen: dict[str, Path] = {}
    journeys: list[JourneySource] = []
    broken: set[str] = set()
    # Exit code 2 (README) is for input that cannot be used at all: a path that does not exist,
    # or a file named on the command line that cannot be read or parsed. A broken file found
    # in a directory is one of its problems (1), reported with the others.
    unusable = bool(targets.missing)
    named = {path for path in paths if path.is_file()}
    for path in dict.fromkeys(targets.journey_files):
        try:
            journey = read_journey(path)
        except JourneyLoadError as error:
            findings += [Finding(ERROR, e.file, e.line, e.key, e.message) for e in error.errors]
            unusable = unusable or (error.unreadable and path in named)
            broken.add(path.stem)  # its id, most likely: reports naming it are not flagged too
            continue
        if journey.id in seen:
            findings.append(
                Finding(
                    ERROR,
                    str(path),
                    journey.line(("id",)),
                    "id",
                    f"journey id '{journey.id}' is also used by {seen[journey.id]}",
                )
            )
            continue
        seen[journey.id] = path
        journeys.append(journey)
        findings += check_journey(journey, store, link_settings)
    # Reports checked alone are checked against the configured journeys.
    journey_ids = set(seen) | broken if targets.journey_files else journey_ids_in(journeys_dir)
    report_findings, unreadable_reports = check_reports(targets.report_files, journey_ids)
    findings += report_findings
    unusable = unusable or bool(unreadable_reports & named)
    segment_findings, unreadable_segments, segment_ids = check_segments(targets.segment_files)
    findings += segment_findings
    unusable = unusable or bool(unreadable_segments & named)
    if targets.segment_files:  # only when segments were checked: a lone journey file names none
        findings += [f for journey in journeys for f in check_segment_references(journey, segment_ids)]
    seen_broadcasts: dict[str, Path] = {}
    known_segments = segment_ids if targets.segment_files else None
    for path in broadcasts:
        findings += check_broadcast_file(path, store, seen_broadcasts, known_segments)
    template_count = (
        sum(1 for p in targets.templates_dir.iterdir() if p.is_dir()) if targets.templates_dir.is_dir() else 0
    )
    return ValidationReport(
        sort_findings(findings),
        len(dict.fromkeys(targets.journey_files)),
        template_count,
        len(dict.fromkeys(targets.report_files)),
        unusable_input=unusable,
        segments=len(dict.fromkeys(targets.segment_files)),
        broadcasts=len(broadcasts),
    )


def check_frequency_file(path: Path) -> list[Finding]:
    try:
        load_frequency_policy(path)
    except FileLoadError as error:
        return [Finding(ERROR, e.file, e.line, e.key, e.message) for e in error.errors]
    return []


def journey_ids_in(directory: Path) -> set[str] | None:
    """The ids of the journeys in `directory` (a file that does not load counts by its name);
    None when there is no such directory."""
    if not directory.is_dir():
        return None
    ids = set()
    for path in journey_files(directory):
        try:
            ids.add(load_file(path).definition.id)
        except JourneyLoadError:
            ids.add(path.stem)
    return ids


def check_journey(journey: JourneySource, store: TemplateStore, link_settings: Settings | None = None) -> list[Finding]:
    """Start-up and reload run these too (`service_checks`), without `link_settings`: a
    segment budget is the marketer's cost check, not a reason to refuse a running journey."""
    findings = check_flow(journey) + check_sends(journey, store)
    return findings + (check_sms_lengths(journey, store, link_settings) if link_settings else [])
