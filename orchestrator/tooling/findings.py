"""What `orchestrator validate` reports: one finding per problem, with file, line and key."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    severity: str  # error | warning
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f"{self.key}: " if self.key else ""
        return f"{where}: {self.severity}: {key}{self.message}"


def sort_findings(findings: list[Finding]) -> list[Finding]:
    unique = list(dict.fromkeys(findings))
    return sorted(unique, key=lambda f: (f.file, f.line or 0, f.severity != ERROR, f.key, f.message))


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == ERROR for f in findings)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def format_human(findings: list[Finding], checked: str) -> str:
    errors = sum(f.severity == ERROR for f in findings)
    warnings = len(findings) - errors
    lines = [str(f) for f in findings]
    lines.append(f"{plural(errors, 'error')}, {plural(warnings, 'warning')} ({checked})")
    return "\n".join(lines) + "\n"


def format_json(findings: list[Finding]) -> str:
    return json.dumps([asdict(f) for f in findings], indent=2, ensure_ascii=False) + "\n"
