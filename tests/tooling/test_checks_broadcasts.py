"""`orchestrator validate` checks broadcast files too: `file:line: key` errors, templates."""

from __future__ import annotations

from pathlib import Path

from orchestrator.broadcasts.loader import parse_broadcast
from orchestrator.cli.broadcasts import broadcast_schema_text
from orchestrator.config import PROJECT_ROOT
from orchestrator.tooling.validate import validate
from tests.tooling.conftest import JOURNEYS, TEMPLATES

BROADCASTS = PROJECT_ROOT / "broadcasts"
SEGMENTS = PROJECT_ROOT / "segments"

BROKEN = """\
id: broken
audience: {segment: someone}
channel: pigeon
template: black-friday-sms
schedule:
  local_time: "10h"
  date: 2027-11-26
holdout: 0.9
"""

UNKNOWN_TEMPLATE = """\
audience: {user_ids: [a]}
channel: sms
template: nope
schedule: {at: "2027-01-01T10:00:00Z"}
"""

MISSING_VARS = """\
audience: {user_ids: [a]}
channel: sms
template: black-friday-sms
schedule: {at: "2027-01-01T10:00:00Z"}
"""


def findings(tmp_path: Path, files: dict[str, str]) -> list[tuple]:
    folder = tmp_path / "broadcasts"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    report = validate([], JOURNEYS, TEMPLATES, broadcasts_dir=folder)
    assert report.summary.endswith(f"{len(files)} broadcasts")
    return [(Path(f.file).name, f.line, f.key, f.message) for f in report.findings]


def test_broken_broadcast_files_are_reported_with_file_line_and_key(tmp_path):
    found = findings(tmp_path, {"broken.yaml": BROKEN, "nope.yaml": UNKNOWN_TEMPLATE, "vars.yaml": MISSING_VARS})
    assert ("broken.yaml", 3, "channel", "Input should be 'email', 'sms' or 'whatsapp'") in found
    assert ("broken.yaml", 6, "schedule.local_time", "local_time is HH:MM on a 24-hour clock, e.g. '10:00'") in found
    assert ("broken.yaml", 8, "holdout", "Input should be less than or equal to 0.5") in found
    assert any(f[:3] == ("nope.yaml", 3, "template") and "'nope' does not exist" in f[3] for f in found)
    assert any(f[:3] == ("vars.yaml", 3, "template") and "uses 'discount_code'" in f[3] for f in found)


def test_an_audience_naming_no_segment_file_is_an_error(tmp_path):
    folder = tmp_path / "broadcasts"
    folder.mkdir()
    (folder / "lost.yaml").write_text(
        BROKEN.replace("channel: pigeon", "channel: sms").replace('"10h"', '"10:00"').replace("0.9", "0.1")
    )
    report = validate([], JOURNEYS, TEMPLATES, segments_dir=SEGMENTS, broadcasts_dir=folder)
    finding = report.findings[0]  # and the template's discount_code, which BROKEN never provides
    assert (finding.line, finding.key) == (2, "audience.segment")
    assert (
        finding.message.startswith("no segment 'someone' (segments: ")
        and "french-opted-in-buyers-this-year" in finding.message
    )


def test_the_shipped_broadcasts_are_valid_and_name_the_committed_schema():
    report = validate([], JOURNEYS, TEMPLATES, segments_dir=SEGMENTS, broadcasts_dir=BROADCASTS)
    assert report.findings == [] and report.broadcasts >= 1
    assert (BROADCASTS / "broadcast.schema.json").read_text(encoding="utf-8") == broadcast_schema_text(), (
        "run: .venv/bin/orchestrator broadcasts schema -o broadcasts/broadcast.schema.json"
    )
    for path in BROADCASTS.glob("*.yaml"):
        assert path.read_text(encoding="utf-8").startswith("# yaml-language-server: $schema=./broadcast.schema.json")
        parse_broadcast(path.read_text(encoding="utf-8"), path)
