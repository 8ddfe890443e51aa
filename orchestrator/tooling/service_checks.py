"""The checks of `orchestrator validate`, run where the service loads journeys.

Start-up and reload load the same files `validate` checks, so they run the same checks:
a journey with an error finding (a send of a template that does not exist, a step that can
never run, a condition reading a name the engine does not provide) is refused like one that
does not parse, and warnings are logged. Otherwise a file `validate` rejects would load and
fail every send at run time.
"""

from __future__ import annotations

import logging
from pathlib import Path

from orchestrator.journeys.loader import JourneyError, JourneyLoadError, LoadReport, load_directory
from orchestrator.templating.store import TemplateStore
from orchestrator.tooling.findings import ERROR, Finding
from orchestrator.tooling.sources import read_journey
from orchestrator.tooling.validate import check_journey

log = logging.getLogger("orchestrator.journeys")


def load_checked_directory(journeys_dir: Path, templates: TemplateStore) -> LoadReport:
    """Load every journey file, then refuse those `validate` finds an error in (against the
    templates the service renders with); logs each warning."""
    report = load_directory(journeys_dir)
    checked = LoadReport(errors=list(report.errors))
    for loaded in report.loaded:
        try:
            findings = check_journey(read_journey(Path(loaded.path)), templates)
        except JourneyLoadError as error:  # changed on disk since it was loaded a moment ago
            checked.errors += error.errors
            continue
        for warning in (f for f in findings if f.severity != ERROR):
            log.warning("journey %s: %s", loaded.definition.id, warning)
        errors = [_as_journey_error(f) for f in findings if f.severity == ERROR]
        if errors:
            checked.errors += errors
        else:
            checked.loaded.append(loaded)
    return checked


def _as_journey_error(finding: Finding) -> JourneyError:
    return JourneyError(finding.file, finding.line, finding.key, finding.message)
