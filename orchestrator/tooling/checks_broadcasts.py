"""`orchestrator validate` on broadcast files: the file itself (`file:line: key` errors, as
the service loads it), its audience's segment among the segment files, then its template as
a journey's send step's template is checked: the folder exists, and every name it reads is
provided (customer, event, the vars)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.broadcasts.loader import parse_broadcast
from orchestrator.declared import FileLoadError, line_for, read_yaml_mapping
from orchestrator.templating.store import TemplateStore
from orchestrator.tooling.checks_templates import RENDER_CONTEXT, template_pieces
from orchestrator.tooling.expressions import names_in_template
from orchestrator.tooling.findings import ERROR, Finding


def check_broadcast_file(
    path: Path, store: TemplateStore, seen: dict[str, Path], segment_ids: set[str] | None = None
) -> list[Finding]:
    """`segment_ids`: the segments that loaded, when segments were checked too (an audience
    naming none of them is an error); None: not checked."""
    try:
        text = path.read_text(encoding="utf-8")
        loaded = parse_broadcast(text, path)
    except OSError as error:
        return [Finding(ERROR, str(path), None, "", f"cannot read: {error.strerror}")]
    except FileLoadError as error:
        return [Finding(ERROR, e.file, e.line, e.key, e.message) for e in error.errors]
    _, lines = read_yaml_mapping(text, path, "broadcast")
    definition = loaded.definition

    def error(key: str, message: str) -> Finding:
        return Finding(ERROR, str(path), line_for((key,), lines), key, message)

    if definition.id in seen:
        return [error("id", f"broadcast id '{definition.id}' is also used by {seen[definition.id]}")]
    seen[definition.id] = path
    findings = []
    segment = definition.audience.segment
    if segment_ids is not None and segment is not None and segment not in segment_ids:
        known = ", ".join(sorted(segment_ids)) or "none"
        findings.append(
            Finding(
                ERROR,
                str(path),
                line_for(("audience", "segment"), lines),
                "audience.segment",
                f"no segment '{segment}' (segments: {known})",
            )
        )
    folder = store.directory / definition.template
    if not folder.is_dir():
        return findings + [error("template", f"template '{definition.template}' does not exist: no folder {folder}")]
    allowed = set(RENDER_CONTEXT) | set(definition.vars)
    missing: dict[str, list[str]] = {}
    for piece in template_pieces(folder):
        for name, line in (names_in_template(piece.text) or {}).items():
            if name not in allowed:
                missing.setdefault(name, []).append(f"{piece.file}:{line + piece.line_offset}")
    provided = ", ".join(sorted(definition.vars)) or "none"
    return findings + [
        error(
            "template",
            f"template '{definition.template}' uses '{name}' ({', '.join(dict.fromkeys(places))}), which this "
            f"broadcast never provides: templates see customer, event and the vars ({provided})",
        )
        for name, places in sorted(missing.items())
    ]
