"""`reports/*.yaml` as `orchestrator validate` checks them.

The loader the service starts with (`reports.loader`) reads the files, so the findings are
its own `file:line: key` errors: YAML, unknown keys, schedules, time zones, KPIs,
recipients, duplicate ids. On top of it, a report scoped to a journey that none of the
journey files declares is an error: it would be mailed every period with nothing in it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from orchestrator.declared import line_for, line_index
from orchestrator.reports.loader import load_report_files
from orchestrator.tooling.findings import ERROR, Finding


def check_reports(paths: list[Path], journey_ids: set[str] | None) -> tuple[list[Finding], set[Path]]:
    """(findings, the files that are not report files at all: unreadable, not YAML).
    `journey_ids` None: no journeys directory to check a report's journey against."""
    catalog = load_report_files(paths)
    findings = [Finding(ERROR, e.file, e.line, e.key, e.message) for e in catalog.errors]
    for report in catalog.reports.values():
        journey = report.definition.scope.journey
        if journey_ids is None or journey is None or journey in journey_ids:
            continue
        lines = line_index(yaml.compose(report.path.read_text(encoding="utf-8")))
        findings.append(
            Finding(
                ERROR,
                str(report.path),
                line_for(("scope", "journey"), lines),
                "scope.journey",
                f"no journey '{journey}' (there are: {', '.join(sorted(journey_ids)) or 'none'}): "
                f"the report would always be empty",
            )
        )
    return findings, catalog.unreadable
