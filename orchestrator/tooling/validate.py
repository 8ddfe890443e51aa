"""`orchestrator validate`: check journeys, templates, reports, segments and broadcasts
without starting anything.

Paths may be journey files, directories of journeys, a templates directory, report files
and directories (those in the configured reports directory or in any folder named
`reports`), or segment files and directories (a directory holding `segment.schema.json`, or
named `segments`); with none, the configured journeys, templates, reports, segments and
broadcasts directories are checked. Templates are always checked too (the configured directory unless another is
given), since journeys refer to them. SMS lengths are measured with links at their short
length under the configured base URL (`checks_sms`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.config import Settings
from orchestrator.declared import FileLoadError, readable_key
from orchestrator.journeys.loader import JourneyLoadError, load_file
from orchestrator.reports.loader import report_files
from orchestrator.segments.loader import parse_segment
from orchestrator.templating.store import TemplateStore
from orchestrator.tooling.checks_broadcasts import broadcast_files, check_broadcast_file
from orchestrator.tooling.checks_flow import check_flow
from orchestrator.tooling.checks_reports import check_reports
from orchestrator.tooling.checks_sms import check_sms_lengths
from orchestrator.tooling.checks_templates import check_sends, check_store
from orchestrator.tooling.findings import ERROR, WARNING, Finding, plural, sort_findings
from orchestrator.tooling.sources import JourneySource, journey_files, read_journey
from orchestrator.vocabulary import segment_left_event


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
    unusable_input: bool = False  # a path that does not exist, a file that cannot be read or parsed
    segments: int = 0
    broadcasts: int = 0

    @property
    def summary(self) -> str:
        counts = [plural(self.journeys, "journey file"), plural(self.templates, "template")]
        for n, what in ((self.reports, "report file"), (self.segments, "segment file"), (self.broadcasts, "broadcast")):
            counts += [plural(n, what)] if n else []
        return ", ".join(counts)


def is_segments_dir(path: Path) -> bool:
    return path.is_dir() and (path.name == "segments" or (path / "segment.schema.json").is_file())


def segment_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]) if directory.is_dir() else []


def is_templates_dir(path: Path) -> bool:
    """Folders of `<locale>.txt` files (it may hold other files too, e.g. auto-replies.yaml)."""
    return any(folder.is_dir() and any(folder.glob("*.txt")) for folder in path.iterdir())


def is_report_path(path: Path, reports_dir: Path) -> bool:
    folder = path if path.is_dir() else path.parent
    return folder.name == "reports" or folder.resolve() == reports_dir.resolve()


def classify(paths: list[Path], reports_dir: Path) -> Targets:
    """A report file or folder is one in the reports directory (or named `reports`); another
    file is a journey; a directory of template folders is the templates directory; any other
    directory holds journeys (its *.yaml files)."""
    targets = Targets()
    for path in paths:
        if path.is_file() and is_segments_dir(path.parent):
            targets.segment_files.append(path)
        elif is_segments_dir(path):
            targets.segment_files += segment_files(path)
        elif path.exists() and is_report_path(path, reports_dir):
            targets.report_files += report_files(path) if path.is_dir() else [path]
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
    link_settings: Settings | None = None,
    segments_dir: Path | None = None,
    broadcasts_dir: Path | None = None,
) -> ValidationReport:
    """`reports_dir` defaults to the `reports` folder beside the journeys directory.
    `link_settings` give the short-link base SMS are measured with (default settings:
    `http://127.0.0.1:8000`). Segments and broadcasts are checked, with no paths, when their
    directories are given."""
    broadcasts = [] if paths or broadcasts_dir is None else broadcast_files(broadcasts_dir)
    link_settings = link_settings or Settings()
    reports_dir = reports_dir or journeys_dir.parent / "reports"
    if paths:
        targets = classify(paths, reports_dir)
        targets.templates_dir = targets.templates_dir or templates_dir
    else:
        targets = Targets(journey_files(journeys_dir), templates_dir, report_files(reports_dir))
        targets.segment_files = segment_files(segments_dir) if segments_dir else []
    findings = [Finding(ERROR, str(p), None, "", "no such file or directory") for p in targets.missing]
    findings += [
        Finding(WARNING, str(p), None, "", "no journey files (*.yaml) nor template folders here") for p in targets.empty
    ]
    store = TemplateStore.load(targets.templates_dir, default_locale)
    findings += check_store(store)
    seen: dict[str, Path] = {}
    broken: set[str] = set()
    journeys: list[JourneySource] = []
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
    segment_findings, segments_unusable, segment_ids = check_segments(targets.segment_files, named)
    findings += segment_findings
    unusable = unusable or segments_unusable
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


def check_segments(paths: list[Path], named: set[Path]) -> tuple[list[Finding], bool, set[str]]:
    """Each segment file's problems, with file:line, whether a named file was unusable, and
    the ids of the segments that loaded."""
    findings, seen, unusable = [], {}, False
    for path in dict.fromkeys(paths):
        try:
            segment = parse_segment(path.read_text(encoding="utf-8"), path)
        except FileLoadError as error:
            findings += [Finding(ERROR, e.file, e.line, e.key, e.message) for e in error.errors]
            unusable = unusable or (error.unreadable and path in named)
            continue
        except OSError as error:
            findings.append(Finding(ERROR, str(path), None, "", f"cannot read: {error.strerror}"))
            unusable = unusable or path in named
            continue
        if segment.id in seen:
            findings.append(
                Finding(ERROR, str(path), None, "id", f"segment id '{segment.id}' is also used by {seen[segment.id]}")
            )
        seen.setdefault(segment.id, path)
    return findings, unusable, set(seen)


def check_segment_references(journey: JourneySource, segment_ids: set[str]) -> list[Finding]:
    """A `segment_entered` trigger or `segment_left` exit rule naming no declared segment
    would never fire: a warning, as the segment may be declared elsewhere."""
    definition = journey.loaded.definition
    named = []
    if definition.trigger.segment_entered:
        named.append((("trigger", "segment_entered"), definition.trigger.segment_entered))
    left = segment_left_event("")
    named += [
        (("exit_on", i), rule.removeprefix(left)) for i, rule in enumerate(definition.exit_on) if rule.startswith(left)
    ]
    return [
        Finding(
            WARNING,
            str(journey.path),
            journey.line(location),
            readable_key(location),
            f"no segment '{segment_id}' among the segments checked: this never fires",
        )
        for location, segment_id in named
        if segment_id not in segment_ids
    ]


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
