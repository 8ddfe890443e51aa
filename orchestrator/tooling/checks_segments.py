"""`segments/*.yaml` as `orchestrator validate` checks them.

The loader the service starts with (`segments.loader`) reads the files, so the findings are
its own `file:line: key` errors: YAML, unknown keys, conditions, windows, duplicate ids. On
top of it, a journey whose `segment_entered` trigger or `segment_left` exit rule names no
segment among those checked gets a warning: it would never fire (the segment may still be
declared elsewhere, hence not an error).
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.declared import readable_key
from orchestrator.segments.loader import load_segment_files
from orchestrator.tooling.findings import ERROR, WARNING, Finding
from orchestrator.tooling.sources import JourneySource
from orchestrator.vocabulary import segment_left_event


def check_segments(paths: list[Path]) -> tuple[list[Finding], set[Path], set[str]]:
    """(findings, the files that are not segment files at all, the ids of those that loaded)."""
    catalog = load_segment_files(paths)
    findings = [Finding(ERROR, e.file, e.line, e.key, e.message) for e in catalog.errors]
    return findings, catalog.unreadable, set(catalog.segments)


def check_segment_references(journey: JourneySource, segment_ids: set[str]) -> list[Finding]:
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
