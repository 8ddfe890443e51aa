"""`orchestrator validate`: check journeys, templates and broadcasts without starting anything.

Paths may be journey files, directories of journeys, or a templates directory; with none,
the configured journeys and templates directories are checked. Templates are always
checked too (the configured directory unless another is given), since journeys refer to
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.journeys.loader import JourneyLoadError
from orchestrator.templating.store import TemplateStore
from orchestrator.tooling.checks_broadcasts import broadcast_files, check_broadcast_file
from orchestrator.tooling.checks_flow import check_flow
from orchestrator.tooling.checks_templates import check_sends, check_store
from orchestrator.tooling.findings import ERROR, WARNING, Finding, sort_findings
from orchestrator.tooling.sources import JourneySource, journey_files, read_journey


@dataclass
class Targets:
    journey_files: list[Path] = field(default_factory=list)
    templates_dir: Path | None = None
    missing: list[Path] = field(default_factory=list)
    empty: list[Path] = field(default_factory=list)


@dataclass
class ValidationReport:
    findings: list[Finding]
    journeys: int
    templates: int
    unusable_input: bool = False  # a path that does not exist, a file that cannot be read or parsed
    broadcasts: int = 0

    @property
    def summary(self) -> str:
        text = (
            f"{self.journeys} journey file{'s' if self.journeys != 1 else ''}, "
            f"{self.templates} template{'s' if self.templates != 1 else ''}"
        )
        return text + (f", {self.broadcasts} broadcast{'s' if self.broadcasts != 1 else ''}" if self.broadcasts else "")


def is_templates_dir(path: Path) -> bool:
    """Folders of `<locale>.txt` files (it may hold other files too, e.g. auto-replies.yaml)."""
    return any(folder.is_dir() and any(folder.glob("*.txt")) for folder in path.iterdir())


def classify(paths: list[Path]) -> Targets:
    """A file is a journey; a directory of template folders is the templates directory; any
    other directory holds journeys (its *.yaml files)."""
    targets = Targets()
    for path in paths:
        if path.is_file():
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
    broadcasts_dir: Path | None = None,
) -> ValidationReport:
    """With no paths, the journeys, the templates and the broadcasts (`broadcasts_dir`)."""
    broadcasts = [] if paths or broadcasts_dir is None else broadcast_files(broadcasts_dir)
    if paths:
        targets = classify(paths)
        targets.templates_dir = targets.templates_dir or templates_dir
    else:
        targets = Targets(journey_files(journeys_dir), templates_dir)
    findings = [Finding(ERROR, str(p), None, "", "no such file or directory") for p in targets.missing]
    findings += [
        Finding(WARNING, str(p), None, "", "no journey files (*.yaml) nor template folders here") for p in targets.empty
    ]
    store = TemplateStore.load(targets.templates_dir, default_locale)
    findings += check_store(store)
    seen: dict[str, Path] = {}
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
        findings += check_journey(journey, store)
    seen_broadcasts: dict[str, Path] = {}
    for path in broadcasts:
        findings += check_broadcast_file(path, store, seen_broadcasts)
    template_count = (
        sum(1 for p in targets.templates_dir.iterdir() if p.is_dir()) if targets.templates_dir.is_dir() else 0
    )
    return ValidationReport(
        sort_findings(findings),
        len(dict.fromkeys(targets.journey_files)),
        template_count,
        unusable_input=unusable,
        broadcasts=len(broadcasts),
    )


def check_journey(journey: JourneySource, store: TemplateStore) -> list[Finding]:
    return check_flow(journey) + check_sends(journey, store)
